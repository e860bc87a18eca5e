// A connected pair of TCP transports on a private libuv loop (127.0.0.1:0), and a user
// that records what a transport reports: for the transport tests.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <uv.h>

#include "proxy/transport/tcp_transport.hpp"

namespace sy::test {

struct Recorder : TransportUser {
    std::string received;
    std::vector<int> ends;
    int drained = 0;
    int write_failures = 0;
    std::vector<int> shutdowns;
    void on_transport_read(Transport&, BufferPool::Buffer* buf, std::size_t len) override {
        received.append(buf->data(), len);
        buf->pool->give(buf);
    }
    void on_transport_read_end(Transport&, int status) override { ends.push_back(status); }
    void on_transport_drained(Transport&) override { ++drained; }
    void on_transport_write_failed(Transport&, int) override { ++write_failures; }
    void on_transport_shutdown(Transport&, int status) override { shutdowns.push_back(status); }
};

struct Pair {
    // A TcpTransport for each end; run_until() turns the loop.
    uv_loop_t loop{};
    uv_tcp_t listener{};
    BufferPool pool{256 * 1024, 4};
    TcpTransport* client = nullptr;
    TcpTransport* server = nullptr;
    int closed = 0;

    Pair() {
        uv_loop_init(&loop);
        uv_tcp_init(&loop, &listener);
        listener.data = this;
        sockaddr_in addr{};
        uv_ip4_addr("127.0.0.1", 0, &addr);
        REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
        REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 8, [](uv_stream_t* s, int) {
            auto* self = static_cast<Pair*>(s->data);
            self->server = new TcpTransport(&self->loop, self->pool);
            REQUIRE(uv_accept(s, self->server->stream()) == 0);
        }) == 0);
        sockaddr_storage bound{};
        int len = sizeof bound;
        uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
        client = new TcpTransport(&loop, pool);
        auto* req = new uv_connect_t;
        REQUIRE(uv_tcp_connect(req, client->tcp(), reinterpret_cast<const sockaddr*>(&bound),
                               [](uv_connect_t* r, int status) {
                                   REQUIRE(status == 0);
                                   delete r;
                               }) == 0);
        run_until([&] { return server != nullptr; });
    }
    ~Pair() {
        uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    template <typename Done>
    void run_until(Done done) {
        for (int i = 0; i < 100000 && !done(); ++i) uv_run(&loop, UV_RUN_ONCE);
        REQUIRE(done());
    }
    void close_both() {
        static constexpr Transport::ClosedCallback kCount = [](void* self) { ++static_cast<Pair*>(self)->closed; };
        client->close(kCount, this);
        server->close(kCount, this);
        run_until([&] { return closed == 2; });
    }
};

}  // namespace sy::test
