# Runs at install time (cmake --install, cpack), so the paths follow the
# prefix given then: /usr (the .deb) puts the config in /etc, any other
# prefix in PREFIX/etc. An existing config is never overwritten.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(etc /etc)
else()
  set(etc "${CMAKE_INSTALL_PREFIX}/etc")
endif()
file(READ "${USCHED_PKG_SRC}/uschedd.service" unit)
string(REPLACE "/usr/bin/" "${CMAKE_INSTALL_PREFIX}/bin/" unit "${unit}")
string(REPLACE "/etc/usched/usched.conf" "${etc}/usched/usched.conf" unit "${unit}")
file(WRITE "${USCHED_PKG_BIN}/uschedd.service" "${unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
  FILES "${USCHED_PKG_BIN}/uschedd.service")
if(NOT EXISTS "$ENV{DESTDIR}${etc}/usched/usched.conf")
  file(INSTALL DESTINATION "${etc}/usched" TYPE FILE FILES "${USCHED_PKG_SRC}/usched.conf")
endif()
