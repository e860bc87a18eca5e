// The admin listener (config `admin:`): GET /metrics (Prometheus text) and GET /healthz.
// Runs on the main thread's loop, apart from the workers; every answer closes the
// connection.
#pragma once

#include <memory>
#include <string>

#include <uv.h>

#include "routing/config.hpp"


namespace sy {

class AdminServer {
public:
    AdminServer(uv_loop_t* loop, const AdminConfig& config) : loop_(loop), config_(config) {}
    // Binds and listens; logs "admin listening on ADDR". False with `error` on failure.
    bool start(std::string* error);
    // Listens on a socket the old process handed over (a binary upgrade). False with `error`.
    bool adopt(int fd, std::string* error);
    // Its listening socket (for handing it over), or -1.
    int fd() const;
    // Stops listening and frees the server once its handle is closed; connections in
    // progress finish on their own.
    static void retire(std::unique_ptr<AdminServer> admin);
    const AdminConfig& config() const { return config_; }

private:
    static void on_connection(uv_stream_t* server, int status);
    bool listen_on(int fd, std::string* error);
    uv_loop_t* loop_;
    AdminConfig config_;
    uv_tcp_t tcp_{};
    bool started_ = false;
};

}  // namespace sy
