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

#include "proxy/client_conn.hpp"
#include "proxy/handoff/handoff.hpp"
#include "proxy/log.hpp"
#include "proxy/net.hpp"
#include "proxy/ops/access_log.hpp"
#include "proxy/ops/admin.hpp"
#include "proxy/ops/pid_file.hpp"
#include "proxy/ops/reload.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/ops/systemd_notify.hpp"
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
    // `handoff_channel`: >= 0 in a binary upgrade's new process (owned from now on).
    Server(std::string config_path, SnapshotPtr snapshot, int handoff_channel)
        : config_path_(std::move(config_path)), running_(std::move(snapshot)) {
        if (handoff_channel >= 0) receiver_ = std::make_unique<HandoffReceiver>(handoff_channel);
    }

    int run();

private:
    const Config& config() const { return running_->config; }
    static void on_signal(uv_signal_t* handle, int signum);
    void drain(int signum);
    void watch_drain();
    void reload();
    // Binary upgrade (proxy/handoff/handoff.hpp).
    bool open_listeners(std::vector<std::vector<ListenSocket>>* per_worker, std::string* error);
    ListenerGroups listener_groups() const;
    void handoff_committed();
    void adopt(MovingTunnel tunnel);
    bool start_admin(const std::optional<AdminConfig>& config, std::unique_ptr<AdminServer>* out,
                     std::string* error);

    std::string config_path_;
    SnapshotPtr running_;
    uv_loop_t loop_{};
    uv_signal_t signals_[5]{};
    uv_timer_t drain_watch_{};  // polls the workers after the first stop signal
    std::unique_ptr<AdminServer> admin_;
    AccessLog access_log_;
    std::vector<std::unique_ptr<Worker>> workers_;
    // Every worker's socket per Config::listen index (the workers own them): what a binary
    // upgrade hands over.
    std::vector<std::vector<int>> listen_fds_;
    std::unique_ptr<HandoffSender> sender_;      // SIGUSR2 in this process
    std::unique_ptr<HandoffReceiver> receiver_;  // this process is a binary upgrade's new one
    std::size_t next_adopter_ = 0;
    bool stopping_ = false;
};

void Server::on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Server*>(handle->data);
    if (signum == SIGHUP) {
        self->reload();
    } else if (signum == SIGUSR2) {
        if (self->stopping_) {
            log_info("SIGUSR2 ignored: stopping");
        } else {
            self->sender_->start();
        }
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
    notify_stopping();
    // Before the workers close the listening sockets the attempt would hand over.
    if (sender_->busy() && !sender_->committed()) sender_->cancel(std::string(name) + " arrived");
    // Stopping while a predecessor still hands tunnels over: no more are taken (the
    // workers would otherwise wait for them).
    if (receiver_) receiver_->stop();
    for (auto& worker : workers_) worker->request_drain();
    AdminServer::retire(std::move(admin_));
    watch_drain();
}

// The signal handles stay active (for a second signal) until the workers are done; then
// every handle of the main loop closes and run() returns.
void Server::watch_drain() {
    drain_watch_.data = this;
    uv_timer_start(&drain_watch_, [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        for (auto& worker : self->workers_) {
            if (!worker->finished()) return;
        }
        for (uv_signal_t& s : self->signals_) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&self->drain_watch_), nullptr);
        self->sender_->finish();
        if (self->receiver_) self->receiver_->stop();
    }, 10, 10);
}

// The successor accepts on our listening sockets: we accept no more, every raw tunnel over
// plain TCP goes to it, the rest drains as on SIGTERM. The pid file is the successor's now
// (remove_pid_file leaves a file naming another process alone).
void Server::handoff_committed() {
    stopping_ = true;
    for (auto& worker : workers_) worker->request_handoff(sender_.get());
    AdminServer::retire(std::move(admin_));
    watch_drain();
}

ListenerGroups Server::listener_groups() const {
    ListenerGroups groups;
    for (std::size_t i = 0; i < config().listen.size() && i < listen_fds_.size(); ++i) {
        groups["listen " + config().listen[i].address.to_string()] = listen_fds_[i];
    }
    if (admin_ && admin_->fd() >= 0) groups["admin " + admin_->config().address.to_string()] = {admin_->fd()};
    return groups;
}

void Server::adopt(MovingTunnel tunnel) {
    Worker& worker = *workers_[next_adopter_++ % workers_.size()];
    if (!worker.post_adopt(std::move(tunnel))) log_error("hand-off: worker %u has stopped; a tunnel is lost", worker.id());
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
    if (sender_->busy()) {
        log_info("SIGHUP ignored: a binary upgrade is under way (send it again after)");
        return;
    }
    log_info("SIGHUP: reloading %s", config_path_.c_str());
    notify_reloading();
    struct ReadyAgain {  // READY=1 however the reload ends
        ~ReadyAgain() { notify_ready(false); }
    } ready_again;
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
    std::vector<std::vector<int>> listen_fds(cfg.listen.size());
    for (std::size_t i = 0, fresh = 0; i < cfg.listen.size(); ++i) {
        if (kept[i] >= 0) {
            listen_fds[i] = listen_fds_[static_cast<std::size_t>(kept[i])];
        } else {
            for (unsigned w = 0; w < workers; ++w) listen_fds[i].push_back(new_fds[w][fresh]);
            ++fresh;
        }
    }
    listen_fds_ = std::move(listen_fds);
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

// The listening sockets, per worker: those a binary upgrade's old process hands over
// (matched by the listener's configured address), the others bound here.
bool Server::open_listeners(std::vector<std::vector<ListenSocket>>* per_worker, std::string* error) {
    const unsigned workers = config().workers;
    ListenerGroups handed;
    if (receiver_ && !receiver_->take_listeners(&handed, error)) {
        *error = "hand-off: " + *error;
        return false;
    }
    per_worker->assign(workers, {});
    for (std::size_t i = 0; i < config().listen.size(); ++i) {
        const ListenerConfig& listener = config().listen[i];
        std::vector<int> fds;
        auto it = handed.find("listen " + listener.address.to_string());
        if (it != handed.end()) {
            fds = std::move(it->second);
            handed.erase(it);
            log_info("took over %s (%zu sockets)", local_address(fds.front()).c_str(), fds.size());
            // More workers than sockets: the others join the port if its sockets allow it.
            int reuse = 0;
            socklen_t len = sizeof reuse;
            ::getsockopt(fds.front(), SOL_SOCKET, SO_REUSEPORT, &reuse, &len);
            sockaddr_storage bound{};
            socklen_t bound_len = sizeof bound;
            ::getsockname(fds.front(), reinterpret_cast<sockaddr*>(&bound), &bound_len);
            while (fds.size() < workers && reuse != 0) {
                int fd = open_listener(bound, true, error);
                if (fd < 0) break;
                fds.push_back(fd);
            }
            if (fds.size() < workers) {
                log_info("%s: %zu of %u workers accept (the old process's sockets do not share the port)",
                         local_address(fds.front()).c_str(), fds.size(), workers);
            }
        } else if (!open_listener_fds(listener, workers, &fds, error)) {
            *error = "listen " + listener.address.to_string() + ": " + *error;
            return false;
        }
        for (std::size_t j = 0; j < fds.size(); ++j) (*per_worker)[j % workers].push_back(ListenSocket{i, fds[j]});
        listen_fds_.push_back(std::move(fds));
    }
    // The admin listener.
    if (config().admin) {
        auto it = handed.find("admin " + config().admin->address.to_string());
        if (it != handed.end() && it->second.size() == 1) {
            auto admin = std::make_unique<AdminServer>(&loop_, *config().admin);
            if (!admin->adopt(it->second.front(), error)) return false;
            admin_ = std::move(admin);
            handed.erase(it);
        } else if (!start_admin(config().admin, &admin_, error)) {
            return false;
        }
    }
    for (auto& [key, fds] : handed) {
        log_info("hand-off: %s is not in the configuration: closed", key.c_str());
        for (int fd : fds) ::close(fd);
    }
    return true;
}

int Server::run() {
    std::string error;
    if (!access_log_.start(config().access_log, config().workers, &error)) {
        log_error("%s", error.c_str());
        return 1;
    }
    uv_loop_init(&loop_);
    HandoffSender::Hooks hooks;
    hooks.listeners = [this] { return listener_groups(); };
    hooks.committed = [this](int) { handoff_committed(); };
    hooks.reclaim = [this] {
        // The failed successor may have written the pid file and told systemd its pid.
        std::string why;
        if (!config().pid_file.empty() && !write_pid_file(config().pid_file, &why)) log_error("%s", why.c_str());
        notify_ready(true);
    };
    hooks.keep = [this](MovingTunnel t) { adopt(std::move(t)); };
    hooks.stop_handing_off = [this] {
        for (auto& worker : workers_) worker->stop_handoff();
    };
    sender_ = std::make_unique<HandoffSender>(&loop_, std::move(hooks));
    std::vector<std::vector<ListenSocket>> fds;
    if (!open_listeners(&fds, &error)) {
        log_error("%s", error.c_str());
        for (auto& group : listen_fds_) {
            for (int fd : group) ::close(fd);
        }
        AdminServer::retire(std::move(admin_));
        sender_->finish();
        uv_run(&loop_, UV_RUN_DEFAULT);
        uv_loop_close(&loop_);
        return 1;
    }
    for (unsigned w = 0; w < config().workers; ++w) {
        workers_.push_back(std::make_unique<Worker>(running_, w, std::move(fds[w]), access_log_));
        if (receiver_) workers_.back()->set_adoptions_pending(true);
    }
    uv_timer_init(&loop_, &drain_watch_);
    const int signums[5] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
    for (int i = 0; i < 5; ++i) {
        uv_signal_init(&loop_, &signals_[i]);
        signals_[i].data = this;
        uv_signal_start(&signals_[i], &Server::on_signal, signums[i]);
    }
    for (auto& worker : workers_) worker->start();
    const std::string pid_file = config().pid_file;
    if (!pid_file.empty() && !write_pid_file(pid_file, &error)) log_error("%s", error.c_str());
    set_reload_timestamp();
    notify_ready(receiver_ != nullptr);
    if (receiver_) {
        // The old process stops accepting when it hears this, then sends its tunnels.
        if (!receiver_->announce_listening(&error)) log_error("hand-off: %s", error.c_str());
        receiver_->receive_tunnels(&loop_, [this](MovingTunnel t) { adopt(std::move(t)); }, [this] {
            for (auto& worker : workers_) worker->set_adoptions_pending(false);
        });
    }

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

int run_server(const Config& config, const std::string& config_path, int handoff_channel) {
    std::signal(SIGPIPE, SIG_IGN);
    g_stats.init(config.workers);
    std::string error;
    SnapshotPtr snapshot = make_snapshot(config, &error);
    if (!snapshot) {
        log_error("%s", error.c_str());
        return 1;
    }
    Server server(config_path, std::move(snapshot), handoff_channel);
    return server.run();
}

}  // namespace sy
