#include "proxy/ops/pid_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace sy {

bool write_pid_file(const std::string& path, std::string* error) {
    const std::string text = std::to_string(::getpid()) + "\n";
    const std::string temporary = path + ".tmp." + std::to_string(::getpid());
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        *error = "cannot write pid file '" + path + "': " + std::strerror(errno);
        return false;
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    int write_errno = errno;
    ok = ::close(fd) == 0 && ok;
    if (ok && std::rename(temporary.c_str(), path.c_str()) == 0) return true;
    *error = "cannot write pid file '" + path + "': " + std::strerror(ok ? errno : write_errno);
    ::unlink(temporary.c_str());
    return false;
}

void remove_pid_file(const std::string& path) {
    char text[32] = {};
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n > 0 && std::to_string(::getpid()) + "\n" == std::string(text, static_cast<std::size_t>(n))) {
        ::unlink(path.c_str());
    }
}

}  // namespace sy
