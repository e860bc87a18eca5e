#include "proxy/server.hpp"

#include <csignal>
#include <memory>
#include <vector>

#include <unistd.h>
#include <uv.h>

#include "proxy/access_log.hpp"
#include "proxy/admin.hpp"
#include "proxy/log.hpp"
#include "proxy/net.hpp"
#include "proxy/worker.hpp"

namespace sy {

namespace {

struct MainLoop {
    uv_loop_t loop{};
    uv_signal_t sigint{};
    uv_signal_t sigterm{};
    uv_timer_t drain_watch{};  // polls the workers after the first signal
    uv_timer_t log_flush{};    // flushes the access log's buffer
    std::vector<std::unique_ptr<Worker>>* workers = nullptr;
    AdminServer* admin = nullptr;
    bool stopping = false;
};

// First SIGINT/SIGTERM: drain (in-flight exchanges finish, tunnels get
// timeouts.shutdown_drain). A second one: close everything now. Either way the exit is 0.
void on_signal(uv_signal_t* handle, int signum) {
    auto* main = static_cast<MainLoop*>(handle->data);
    const char* name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (main->stopping) {
        log_info("%s again: closing every connection now", name);
        for (auto& worker : *main->workers) worker->request_drain(true);
        return;
    }
    main->stopping = true;
    log_info("%s: draining", name);
    for (auto& worker : *main->workers) worker->request_drain();
    if (main->admin != nullptr) main->admin->close();
    // The signal handles stay active (for a second signal) until the workers are done.
    main->drain_watch.data = main;
    uv_timer_start(&main->drain_watch, [](uv_timer_t* t) {
        auto* m = static_cast<MainLoop*>(t->data);
        for (auto& worker : *m->workers) {
            if (!worker->finished()) return;
        }
        uv_close(reinterpret_cast<uv_handle_t*>(&m->sigint), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&m->sigterm), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&m->drain_watch), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&m->log_flush), nullptr);
    }, 10, 10);
}

// One listening socket per (listener, worker). Port 0 is resolved by the first worker's
// socket, and the other workers bind the same port.
bool open_listeners(const Config& config, std::vector<std::vector<int>>* fds_per_worker) {
    fds_per_worker->assign(config.workers, {});
    bool reuse_port = config.workers > 1;
    for (const ListenerConfig& listener : config.listen) {
        std::string error;
        sockaddr_storage address{};
        if (!resolve_address(listener.address, &address, &error)) {
            log_error("listen %s: %s", listener.address.to_string().c_str(), error.c_str());
            return false;
        }
        for (unsigned w = 0; w < config.workers; ++w) {
            int fd = open_listener(address, reuse_port, &error);
            if (fd < 0) {
                log_error("listen %s: %s", listener.address.to_string().c_str(), error.c_str());
                return false;
            }
            if (w == 0) {
                // Fix the port chosen by the kernel for the remaining workers.
                sockaddr_storage bound{};
                socklen_t len = sizeof bound;
                if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) address = bound;
                log_info("listening on %s", local_address(fd).c_str());
            }
            (*fds_per_worker)[w].push_back(fd);
        }
    }
    return true;
}

}  // namespace

int run_server(const Config& config) {
    std::signal(SIGPIPE, SIG_IGN);

    for (const UpstreamConfig& upstream : config.upstreams) {
        for (const Address& server : upstream.servers) {
            sockaddr_storage ignored{};
            std::string error;
            if (!resolve_address(server, &ignored, &error)) {
                log_error("upstream %s: %s", upstream.name.c_str(), error.c_str());
                return 1;
            }
        }
    }

    AccessLog access_log;
    std::string error;
    if (!access_log.open(config.access_log, &error)) {
        log_error("%s", error.c_str());
        return 1;
    }

    std::vector<std::vector<int>> fds;
    if (!open_listeners(config, &fds)) return 1;

    MainLoop main;
    uv_loop_init(&main.loop);
    std::unique_ptr<AdminServer> admin;
    if (config.admin) {
        admin = std::make_unique<AdminServer>(&main.loop, *config.admin);
        if (!admin->start(&error)) {
            log_error("%s", error.c_str());
            return 1;
        }
        main.admin = admin.get();
    }

    std::vector<std::unique_ptr<Worker>> workers;
    for (unsigned w = 0; w < config.workers; ++w) {
        workers.push_back(std::make_unique<Worker>(config, w, std::move(fds[w]), access_log));
    }
    main.workers = &workers;
    uv_timer_init(&main.loop, &main.drain_watch);
    uv_timer_init(&main.loop, &main.log_flush);
    main.log_flush.data = &access_log;
    if (access_log.enabled()) {
        uv_timer_start(&main.log_flush, [](uv_timer_t* t) { static_cast<AccessLog*>(t->data)->flush(); }, 200, 200);
    }
    uv_signal_init(&main.loop, &main.sigint);
    uv_signal_init(&main.loop, &main.sigterm);
    main.sigint.data = &main;
    main.sigterm.data = &main;
    uv_signal_start(&main.sigint, &on_signal, SIGINT);
    uv_signal_start(&main.sigterm, &on_signal, SIGTERM);

    for (auto& worker : workers) worker->start();
    // Returns once the signal handles and the admin listener are closed and the admin
    // connections in progress have answered.
    uv_run(&main.loop, UV_RUN_DEFAULT);
    for (auto& worker : workers) worker->join();
    access_log.flush();
    uv_loop_close(&main.loop);
    log_info("stopped");
    return 0;
}

}  // namespace sy
