// TcpTransport over a real loopback connection on a libuv loop: zero-copy writes from pool
// buffers through a full socket buffer, the drained signal, half-close after a queue, and
// every buffer back in its pool after close (proxy/transport/transport.hpp).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include <uv.h>

#include "proxy/transport/tcp_transport.hpp"

using namespace sy;

namespace {

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

BufferPool::Buffer* filled(BufferPool& pool, std::size_t len, std::size_t offset) {
    BufferPool::Buffer* b = pool.take();
    for (std::size_t i = 0; i < len; ++i) b->data()[i] = static_cast<char>((offset + i) * 7 % 251);
    return b;
}

}  // namespace

TEST_CASE("zero-copy writes through a full socket buffer, drained once, then EOF after the queue") {
    Pair p;
    Recorder client_events, server_events;
    p.client->set_user(&client_events);
    p.server->set_user(&server_events);

    // The server does not read: the client's writes fill the socket buffers, then queue.
    const std::size_t chunk = 256 * 1024;
    std::size_t sent = 0;
    while (p.client->queued() == 0 && sent < 64 * chunk) {
        REQUIRE(p.client->write_buffer(filled(p.pool, chunk, sent), chunk) != Transport::Written::failed);
        sent += chunk;
    }
    REQUIRE(p.client->queued() > 0);
    CHECK(p.client->queued() <= chunk);  // only the rest of the last buffer waits
    CHECK(p.pool.lent() == 1);           // that buffer, written from where it is
    CHECK(p.client->shutdown_write() == Transport::Shutdown::pending);

    REQUIRE(p.server->start_reading());
    p.run_until([&] { return !server_events.ends.empty(); });
    CHECK(server_events.ends == std::vector<int>{UV_EOF});
    CHECK(server_events.received.size() == sent);
    bool same = true;
    for (std::size_t i = 0; i < sent && same; ++i) same = server_events.received[i] == static_cast<char>(i * 7 % 251);
    CHECK(same);
    CHECK(client_events.drained == 1);
    CHECK(client_events.shutdowns == std::vector<int>{0});
    CHECK(p.client->queued() == 0);
    CHECK(p.pool.lent() == 0);

    // Nothing queued: the server's half-close is done at once, and the client sees EOF.
    CHECK(p.server->shutdown_write() == Transport::Shutdown::done);
    REQUIRE(p.client->start_reading());
    p.run_until([&] { return !client_events.ends.empty(); });
    CHECK(client_events.ends == std::vector<int>{UV_EOF});
    p.close_both();
    CHECK(p.pool.lent() == 0);
}

TEST_CASE("copied and zero-copy writes keep their order; corked writes go out as one") {
    Pair p;
    Recorder server_events;
    p.server->set_user(&server_events);
    REQUIRE(p.server->start_reading());
    p.client->cork();
    p.client->write("head ");
    BufferPool::Buffer* b = p.pool.take();
    std::memcpy(b->data(), "body ", 5);
    REQUIRE(p.client->write_buffer(b, 5) == Transport::Written::queued);  // corked: copied behind the head
    p.client->uncork();
    p.client->write({"tail", "!"});
    p.run_until([&] { return server_events.received.size() == 15; });
    CHECK(server_events.received == "head body tail!");
    CHECK(p.pool.lent() == 0);
    p.close_both();
}

TEST_CASE("closing with writes queued gives every buffer back and reports nothing") {
    Pair p;
    Recorder client_events;
    p.client->set_user(&client_events);
    const std::size_t chunk = 256 * 1024;
    std::size_t sent = 0;
    while (p.client->queued() == 0 && sent < 64 * chunk) {
        REQUIRE(p.client->write_buffer(filled(p.pool, chunk, sent), chunk) != Transport::Written::failed);
        sent += chunk;
    }
    REQUIRE(p.pool.lent() == 1);
    p.close_both();
    CHECK(p.pool.lent() == 0);
    CHECK(client_events.write_failures == 0);  // a close is not a failure to report
    CHECK(client_events.drained == 0);
}
