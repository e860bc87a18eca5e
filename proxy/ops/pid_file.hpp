// The pid file (config `pid_file`): written once the listeners are open, removed at a
// clean exit.
#pragma once

#include <string>

namespace sy {

// Writes this process's id and a newline to `path` atomically (a temporary file in the
// same directory, renamed over it). False with `error` on failure.
bool write_pid_file(const std::string& path, std::string* error);
// Removes `path` if it still holds this process's id (another process may own it now).
void remove_pid_file(const std::string& path);

}  // namespace sy
