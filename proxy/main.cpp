// switchyard: the command line.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include "proxy/handoff/handoff.hpp"
#include "proxy/log.hpp"
#include "proxy/server.hpp"
#include "routing/config_loader.hpp"

namespace {

constexpr const char* kUsage =
    "usage: switchyard --config FILE [--check] [--trace]\n"
    "       switchyard --version | --help\n"
    "\n"
    "A reverse proxy for HTTP/1.1 that mediates protocol upgrades.\n"
    "\n"
    "  -c, --config FILE   the YAML configuration (see docs/configuration.md)\n"
    "      --check         validate the configuration, print 'FILE: ok', and exit\n"
    "      --trace         log every connection state transition to stderr\n"
    "                      (also SWITCHYARD_TRACE=1)\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Signals: SIGHUP reloads the configuration, SIGUSR1 reopens the access log,\n"
    "SIGUSR2 replaces the binary (the one now at the same path) without closing tunnels,\n"
    "SIGINT/SIGTERM drain and stop.\n"
    "\n"
    "Exit status: 0 after a clean stop (SIGINT/SIGTERM, or handing over after SIGUSR2)\n"
    "or a successful check,\n"
    "1 on configuration or start-up errors, 2 on usage errors.\n";

int usage_error(const char* message, const char* arg) {
    std::fprintf(stderr, "switchyard: %s%s%s\n%s", message, arg != nullptr ? ": " : "", arg != nullptr ? arg : "",
                 kUsage);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    sy::record_process_image(argc, argv);
    // A binary upgrade's new process: the old one's channel (docs/operations.md).
    int handoff_channel = -1;
    if (const char* fd = std::getenv(sy::kHandoffFdVariable); fd != nullptr) {
        handoff_channel = std::atoi(fd);
        ::unsetenv(sy::kHandoffFdVariable);
        if (handoff_channel >= 0) ::fcntl(handoff_channel, F_SETFD, FD_CLOEXEC);
    }
    std::string config_path;
    bool check_only = false;
    if (const char* trace = std::getenv("SWITCHYARD_TRACE"); trace != nullptr && std::strcmp(trace, "1") == 0) {
        sy::g_trace_enabled = true;
    }
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (arg == "-V" || arg == "--version") {
            std::printf("switchyard %s\n", SWITCHYARD_VERSION);
            return 0;
        }
        if (arg == "--check") {
            check_only = true;
        } else if (arg == "--trace") {
            sy::g_trace_enabled = true;
        } else if (arg == "-c" || arg == "--config") {
            if (i + 1 >= argc) return usage_error("missing value for", argv[i]);
            config_path = argv[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            config_path = arg.substr(9);
        } else {
            return usage_error("unknown argument", argv[i]);
        }
    }
    if (config_path.empty()) return usage_error("no configuration given (--config FILE)", nullptr);

    sy::ConfigResult loaded = sy::load_config_file(config_path);
    if (!loaded.config) {
        for (const sy::ConfigError& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
        return 1;
    }
    if (check_only) {
        std::printf("%s: ok\n", config_path.c_str());
        return 0;
    }
    return sy::run_server(*loaded.config, config_path, handoff_channel);
}
