#include "proxy/server.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <ctime>
#include <memory>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/log.hpp"
#include "proxy/net.hpp"
#include "proxy/ops/access_log.hpp"
#include "proxy/ops/admin.hpp"
#include "proxy/ops/pid_file.hpp"
#include "proxy/ops/reload.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/worker.hpp"
#include "routing/config_loader.hpp"

namespace sy {

namespace {

// One listening socket per worker for `listener` (SO_REUSEPORT when there are several).
// Port 0 is resolved by the first socket and the other workers bind the same port.
bool open_listener_fds(const ListenerConfig& listener, unsigned workers, std::vector<int>* fds, std::string* error) {
    sockaddr_storage address{};
    if (!resolve_address(listener.address, &address, error)) return false;
    for (unsigned w = 0; w < workers; ++w) {
        int fd = open_listener(address, workers > 1, error);
        if (fd < 0) {
            for (int opened : *fds) ::close(opened);
            fds->clear();
            return false;
        }
        if (w == 0) {
            sockaddr_storage bound{};
            socklen_t len = sizeof bound;
            if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) address = bound;
            log_info("listening on %s", local_address(fd).c_str());
        }
        fds->push_back(fd);
    }
    return true;
}

void set_reload_timestamp() {
    // A gauge holding a point in time: the main thread's cell carries the whole value.
    std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    g_stats.add(g_stats.last_reload_success, now - g_stats.registry.value(g_stats.last_reload_success));
}

class Server {
public:
    Server(std::string config_path, SnapshotPtr snapshot)
        : config_path_(std::move(config_path)), running_(std::move(snapshot)) {}

    int run();

private:
    const Config& config() const { return running_->config; }
    static void on_signal(uv_signal_t* handle, int signum);
    void drain(int signum);
    void reload();
    bool start_admin(const std::optional<AdminConfig>& config, std::unique_ptr<AdminServer>* out,
                     std::string* error);

    std::string config_path_;
    SnapshotPtr running_;
    uv_loop_t loop_{};
    uv_signal_t signals_[4]{};
    uv_timer_t drain_watch_{};  // polls the workers after the first stop signal
    std::unique_ptr<AdminServer> admin_;
    AccessLog access_log_;
    std::vector<std::unique_ptr<Worker>> workers_;
    bool stopping_ = false;
};

void Server::on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Server*>(handle->data);
    if (signum == SIGHUP) {
        self->reload();
    } else if (signum == SIGUSR1) {
        log_info("SIGUSR1: reopening the access log");
        self->access_log_.reopen();
    } else {
        self->drain(signum);
    }
}

// First SIGINT/SIGTERM: drain (in-flight exchanges finish, tunnels get
// timeouts.shutdown_drain). A second one: close everything now. Either way the exit is 0.
void Server::drain(int signum) {
    const char* name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (stopping_) {
        log_info("%s again: closing every connection now", name);
        for (auto& worker : workers_) worker->request_drain(true);
        return;
    }
    stopping_ = true;
    log_info("%s: draining", name);
    for (auto& worker : workers_) worker->request_drain();
    AdminServer::retire(std::move(admin_));
    // The signal handles stay active (for a second signal) until the workers are done.
    drain_watch_.data = this;
    uv_timer_start(&drain_watch_, [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        for (auto& worker : self->workers_) {
            if (!worker->finished()) return;
        }
        for (uv_signal_t& s : self->signals_) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&self->drain_watch_), nullptr);
    }, 10, 10);
}

bool Server::start_admin(const std::optional<AdminConfig>& config, std::unique_ptr<AdminServer>* out,
                         std::string* error) {
    if (!config) return true;
    auto admin = std::make_unique<AdminServer>(&loop_, *config);
    if (!admin->start(error)) {
        AdminServer::retire(std::move(admin));
        return false;
    }
    *out = std::move(admin);
    return true;
}

// SIGHUP (docs/operations.md, "Reload"). Every step that can fail runs before anything
// changes, so a failed reload leaves the running configuration exactly as it was.
void Server::reload() {
    if (stopping_) return;
    log_info("SIGHUP: reloading %s", config_path_.c_str());
    auto fail = [](const std::string& why) {
        log_error("reload failed: %s, keeping the running configuration", why.c_str());
        g_stats.add(g_stats.reloads_failed);
    };
    ConfigResult loaded = load_config_file(config_path_);
    if (!loaded.config) {
        for (const ConfigError& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
        std::fflush(stderr);
        fail(std::to_string(loaded.errors.size()) + (loaded.errors.size() == 1 ? " error" : " errors"));
        return;
    }
    Config next = std::move(*loaded.config);
    for (const std::string& line : restart_only_changes(config(), next)) log_info("%s", line.c_str());

    std::string error;
    SnapshotPtr snapshot = make_snapshot(std::move(next), &error);
    if (!snapshot) {
        fail(error);
        return;
    }
    const Config& cfg = snapshot->config;
    const unsigned workers = static_cast<unsigned>(workers_.size());

    // New listeners: bound now, handed to the workers below.
    const std::vector<int> kept = plan_listeners(config().listen, cfg.listen);
    std::vector<std::vector<int>> new_fds(workers);
    auto close_new = [&] {
        for (auto& fds : new_fds) {
            for (int fd : fds) ::close(fd);
        }
    };
    for (std::size_t i = 0; i < cfg.listen.size(); ++i) {
        if (kept[i] >= 0) continue;
        std::vector<int> fds;
        if (!open_listener_fds(cfg.listen[i], workers, &fds, &error)) {
            close_new();
            fail("listen " + cfg.listen[i].address.to_string() + ": " + error);
            return;
        }
        for (unsigned w = 0; w < workers; ++w) new_fds[w].push_back(fds[w]);
    }
    // The admin listener, if it moved.
    const bool admin_moved = cfg.admin.has_value() != config().admin.has_value() ||
                             (cfg.admin && cfg.admin->address.to_string() != config().admin->address.to_string());
    std::unique_ptr<AdminServer> new_admin;
    if (admin_moved && !start_admin(cfg.admin, &new_admin, &error)) {
        close_new();
        fail(error);
        return;
    }
    // The access log (the last step that can fail; it commits when it succeeds).
    if (!access_log_.reconfigure(cfg.access_log, &error)) {
        AdminServer::retire(std::move(new_admin));
        close_new();
        fail(error);
        return;
    }

    // Commit.
    if (admin_moved) {
        AdminServer::retire(std::move(admin_));
        admin_ = std::move(new_admin);
    }
    for (std::size_t i = 0; i < config().listen.size(); ++i) {
        if (std::find(kept.begin(), kept.end(), static_cast<int>(i)) == kept.end()) {
            log_info("closing listener %s", config().listen[i].address.to_string().c_str());
        }
    }
    if (cfg.pid_file != config().pid_file) {
        if (!cfg.pid_file.empty() && !write_pid_file(cfg.pid_file, &error)) log_error("%s", error.c_str());
        if (!config().pid_file.empty()) remove_pid_file(config().pid_file);
    }
    for (unsigned w = 0; w < workers; ++w) workers_[w]->post_reload(snapshot, kept, std::move(new_fds[w]));
    // Done when every worker runs the new snapshot (each switches in microseconds; the
    // bound only guards against a worker that stopped answering).
    for (auto& worker : workers_) {
        if (!worker->wait_reloads_applied(std::chrono::seconds(5))) {
            log_error("reload: worker %u has not switched after 5 s", worker->id());
        }
    }
    running_ = std::move(snapshot);
    g_stats.add(g_stats.reloads_ok);
    set_reload_timestamp();
    log_info("reloaded %s", config_path_.c_str());
}

int Server::run() {
    std::string error;
    if (!access_log_.start(config().access_log, config().workers, &error)) {
        log_error("%s", error.c_str());
        return 1;
    }
    std::vector<std::vector<int>> fds(config().workers);
    for (const ListenerConfig& listener : config().listen) {
        std::vector<int> opened;
        if (!open_listener_fds(listener, config().workers, &opened, &error)) {
            log_error("listen %s: %s", listener.address.to_string().c_str(), error.c_str());
            return 1;
        }
        for (unsigned w = 0; w < config().workers; ++w) fds[w].push_back(opened[w]);
    }

    uv_loop_init(&loop_);
    if (!start_admin(config().admin, &admin_, &error)) {
        log_error("%s", error.c_str());
        uv_run(&loop_, UV_RUN_DEFAULT);
        uv_loop_close(&loop_);
        return 1;
    }
    for (unsigned w = 0; w < config().workers; ++w) {
        workers_.push_back(std::make_unique<Worker>(running_, w, std::move(fds[w]), access_log_));
    }
    uv_timer_init(&loop_, &drain_watch_);
    const int signums[4] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
    for (int i = 0; i < 4; ++i) {
        uv_signal_init(&loop_, &signals_[i]);
        signals_[i].data = this;
        uv_signal_start(&signals_[i], &Server::on_signal, signums[i]);
    }
    for (auto& worker : workers_) worker->start();
    const std::string pid_file = config().pid_file;
    if (!pid_file.empty() && !write_pid_file(pid_file, &error)) log_error("%s", error.c_str());
    set_reload_timestamp();

    // Returns once the signal handles and the admin listener are closed and the admin
    // connections in progress have answered.
    uv_run(&loop_, UV_RUN_DEFAULT);
    for (auto& worker : workers_) worker->join();
    workers_.clear();
    access_log_.stop();
    if (!config().pid_file.empty()) remove_pid_file(config().pid_file);
    uv_loop_close(&loop_);
    log_info("stopped");
    return 0;
}

}  // namespace

int run_server(const Config& config, const std::string& config_path) {
    std::signal(SIGPIPE, SIG_IGN);
    g_stats.init(config.workers);
    std::string error;
    SnapshotPtr snapshot = make_snapshot(config, &error);
    if (!snapshot) {
        log_error("%s", error.c_str());
        return 1;
    }
    Server server(config_path, std::move(snapshot));
    return server.run();
}

}  // namespace sy
