# A program linked against Debian's shared gRPC, protobuf and abseil maps
# 58 libraries and resolves ~15,600 relocations before main: ~10 ms on this
# kind of machine, most of what `usched run -- cmd` used to cost. Debian
# ships their static archives as well (libgrpc++.a, libabsl_*.a, ...);
# pointing the imported targets at them makes usched start in ~1 ms.
# OpenSSL, zlib, re2 and c-ares, which gRPC brings along, come from their
# archives too: loading them (libcrypto alone resolves thousands of
# symbols) was a third of usched-cli's start-up (issue 12).
#
# USCHED_STATIC_GRPC=OFF keeps the shared libraries.
option(USCHED_STATIC_GRPC "Link gRPC, protobuf and abseil from their static archives" ON)

function(usched_use_static_archives)
  if(NOT USCHED_STATIC_GRPC)
    return()
  endif()
  get_property(targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  set(switched 0)
  foreach(t IN LISTS targets)
    if(t STREQUAL "re2::re2")
      # From pkg-config: "-pthread;-L<dir>;-lre2", not a path.
      find_library(USCHED_RE2_ARCHIVE NAMES libre2.a)
      get_target_property(libs re2::re2 INTERFACE_LINK_LIBRARIES)
      list(FIND libs "-lre2" at)
      if(USCHED_RE2_ARCHIVE AND at GREATER -1)
        list(REMOVE_AT libs ${at})
        list(INSERT libs ${at} "${USCHED_RE2_ARCHIVE}")
        set_target_properties(re2::re2 PROPERTIES INTERFACE_LINK_LIBRARIES "${libs}")
        math(EXPR switched "${switched} + 1")
      endif()
      continue()
    endif()
    if(NOT t MATCHES "^(gRPC::(grpc\\+\\+|grpc|gpr|upb|address_sorting)|absl::|protobuf::libprotobuf$|OpenSSL::(SSL|Crypto)$|ZLIB::ZLIB$|c-ares::cares$)")
      continue()
    endif()
    get_target_property(type ${t} TYPE)
    if(NOT type MATCHES "SHARED_LIBRARY|UNKNOWN_LIBRARY")
      continue()
    endif()
    get_target_property(configs ${t} IMPORTED_CONFIGURATIONS)
    set(props IMPORTED_LOCATION)
    foreach(c IN LISTS configs)
      string(TOUPPER "${c}" c)
      list(APPEND props IMPORTED_LOCATION_${c})
    endforeach()
    foreach(p IN LISTS props)
      get_target_property(loc ${t} ${p})
      if(loc AND loc MATCHES "\\.so(\\.[0-9.]+)?$")
        string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" archive "${loc}")
        if(EXISTS "${archive}")
          set_target_properties(${t} PROPERTIES ${p} "${archive}")
          # A shared library's soname no longer applies to the archive.
          set_target_properties(${t} PROPERTIES IMPORTED_NO_SONAME TRUE)
          math(EXPR switched "${switched} + 1")
        endif()
      endif()
    endforeach()
  endforeach()
  message(STATUS "usched: ${switched} gRPC/protobuf/abseil/OpenSSL/zlib/c-ares/re2 libraries linked from static archives")
endfunction()
