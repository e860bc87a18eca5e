// One TCP connection to a backend server. It is either busy (attached to the client
// connection whose exchange it carries, which receives its events) or idle in its pool.
// It owns its handles and deletes itself once both are closed.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <uv.h>

#include "proxy/transport/tcp_transport.hpp"
#include "proxy/transport/tls_transport.hpp"
#include "routing/config.hpp"

namespace sy {

class UpstreamConn;
class UpstreamPool;

// Implemented by whoever uses a busy upstream connection.
class UpstreamEvents {
public:
    virtual ~UpstreamEvents() = default;
    virtual void on_upstream_connected(UpstreamConn& conn) = 0;
    // The connection attempt failed (refused, unreachable, timed out: UV_ETIMEDOUT).
    virtual void on_upstream_connect_failed(UpstreamConn& conn, int status) = 0;
    virtual void on_upstream_read(UpstreamConn& conn, const char* data, std::size_t len) = 0;
    // The server closed (UV_EOF) or the connection broke (another negative status).
    virtual void on_upstream_closed(UpstreamConn& conn, int status) = 0;
    virtual void on_upstream_drained(UpstreamConn& conn) = 0;
    virtual void on_upstream_write_failed(UpstreamConn& conn, int status) = 0;
};

class UpstreamConn final : private TransportUser {
public:
    // The connection keeps its pool alive (a reload may drop the pool from the worker's
    // configuration while this connection still carries an exchange or a tunnel).
    UpstreamConn(std::shared_ptr<UpstreamPool> pool, std::size_t server);

    // Starts connecting; `events` gets on_upstream_connected or on_upstream_connect_failed
    // (UV_ETIMEDOUT after `timeout`). `proxy_header`: written first once connected, on TCP
    // (before any TLS), for servers that expect the PROXY protocol.
    void connect(UpstreamEvents& events, Millis timeout, std::string proxy_header = {});
    // Takes an idle connection out of the pool for `events`.
    void attach(UpstreamEvents& events);
    // The exchange ended cleanly and the connection may carry another one: back to the pool.
    void release();
    // Closes the connection; no more events. Safe to call twice.
    void close();

    Transport& writer() { return *transport_; }
    void pause_reading();
    void resume_reading();
    bool reading() const { return transport_->reading(); }
    std::size_t server() const { return server_; }
    UpstreamPool& pool() { return *pool_; }
    bool reused() const { return reused_; }
    // Why TLS toward the server failed (for the error log); empty otherwise.
    std::string tls_error() const { return tls_ != nullptr ? tls_->error() : std::string(); }
    bool idle() const { return events_ == nullptr; }
    // A binary upgrade (proxy/handoff/). adopt: a connected socket from the old process
    // becomes this connection, busy for `events` (false: `fd` is left open).
    // detach_for_handoff: a duplicate of the socket and the bytes not written yet
    // (TcpTransport::detach_for_handoff); -1 for a TLS connection, which cannot move.
    bool adopt(UpstreamEvents& events, int fd);
    bool plain() const { return tls_ == nullptr; }
    int detach_for_handoff(std::string* unwritten) { return tls_ == nullptr ? tcp_->detach_for_handoff(unwritten) : -1; }
    // The connection becomes one end of a tunnel, which becomes its transport's user: the
    // timer, which only pooling and connecting need, is given back.
    void enter_tunnel();
    // The byte stream, for a tunnel that takes it over.
    Transport& transport() { return *transport_; }

private:
    friend class UpstreamPool;
    ~UpstreamConn() override = default;

    static void on_connect(uv_connect_t* req, int status);
    static void on_timer(uv_timer_t* timer);
    static void on_transport_closed(void* self);

    void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) override;
    void on_transport_read_end(Transport& t, int status) override;
    void on_transport_drained(Transport& t) override;
    void on_transport_write_failed(Transport& t, int status) override;
    void on_transport_shutdown(Transport& t, int status) override;
    void start_reading();

    std::shared_ptr<UpstreamPool> pool_;
    std::size_t server_;
    UpstreamEvents* events_ = nullptr;
    // The server's byte stream (TCP, or TLS over it); it frees itself after close() and
    // then frees us.
    Transport* transport_;
    TcpTransport* tcp_;            // the TCP under it, for connecting
    TlsTransport* tls_ = nullptr;  // transport_ when the pool speaks TLS
    // Connect timeout while connecting, idle timeout while pooled; on the heap so that a
    // tunnel can give it back (null then).
    uv_timer_t* timer_ = nullptr;
    std::string proxy_header_;  // while connecting
    bool connecting_ = false;
    bool reused_ = false;
    bool closing_ = false;
};

}  // namespace sy
