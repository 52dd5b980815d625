#include "usched/names.h"

namespace usched {
namespace {

bool valid_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// Printable rendering of a name for error messages (NUL and controls escaped).
std::string show(std::string_view s) {
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Status validate_name(std::string_view path) {
  const std::string prefix = "name '" + show(path) + "': ";
  if (path.empty()) return invalid("name is empty (the root cannot be named)");
  if (path.front() == '/') return invalid(prefix + "must not start with '/'");
  if (path.back() == '/') return invalid(prefix + "must not end with '/'");
  int depth = 0;
  size_t pos = 0;
  while (true) {
    size_t slash = path.find('/', pos);
    std::string_view comp =
        path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (comp.empty()) return invalid(prefix + "empty component (doubled '/')");
    ++depth;
    if (depth > kMaxDepth) {
      return invalid(prefix + "more than " + std::to_string(kMaxDepth) + " components");
    }
    if (comp == "." || comp == "..") {
      return invalid(prefix + "component '" + std::string(comp) + "' is not allowed");
    }
    if (comp.size() > static_cast<size_t>(kMaxNameComponent)) {
      return invalid(prefix + "component '" + show(comp) + "' is longer than " +
                     std::to_string(kMaxNameComponent) + " characters");
    }
    for (char c : comp) {
      if (!valid_char(c)) {
        return invalid(prefix + "component '" + show(comp) + "' has character '" +
                       show(std::string_view(&c, 1)) + "'; only A-Z a-z 0-9 _ . - are allowed");
      }
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return Status::ok();
}

std::vector<std::string> split_name(std::string_view path) {
  std::vector<std::string> out;
  if (path.empty()) return out;
  size_t pos = 0;
  while (true) {
    size_t slash = path.find('/', pos);
    out.emplace_back(path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return out;
}

std::string parent_name(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return "";
  return std::string(path.substr(0, slash));
}

std::string leaf_name(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return std::string(path);
  return std::string(path.substr(slash + 1));
}

Status validate_thread_glob(std::string_view glob) {
  const std::string prefix = "thread glob '" + show(glob) + "': ";
  if (glob.empty()) return invalid("thread glob is empty (give e.g. 'CPU */KVM')");
  if (glob.size() > 255) return invalid("thread glob is longer than 255 characters");
  int literal = 0;  // characters a matching name must hold at least
  for (size_t i = 0; i < glob.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(glob[i]);
    if (c < 0x20 || c == 0x7f) return invalid(prefix + "holds a control character at offset " + std::to_string(i));
    if (c == '\\') {
      if (i + 1 == glob.size()) return invalid(prefix + "ends in a lone '\\'");
      ++i;
      ++literal;
    } else if (c == '[') {
      // fnmatch(3): a ']' right after '[' or '[!' belongs to the set.
      size_t j = i + 1;
      if (j < glob.size() && (glob[j] == '!' || glob[j] == '^')) ++j;
      if (j < glob.size() && glob[j] == ']') ++j;
      while (j < glob.size() && glob[j] != ']') ++j;
      if (j >= glob.size()) return invalid(prefix + "'[' at offset " + std::to_string(i) + " is never closed");
      i = j;
      ++literal;
    } else if (c != '*') {
      ++literal;  // '?' and plain characters take one byte each
    }
  }
  if (literal > kMaxCommLen) {
    return invalid(prefix + "needs at least " + std::to_string(literal) +
                   " characters but thread names hold at most " + std::to_string(kMaxCommLen));
  }
  return Status::ok();
}

}  // namespace usched
