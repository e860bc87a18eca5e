// TcpTransport over a real loopback connection on a libuv loop: zero-copy writes from pool
// buffers through a full socket buffer, the drained signal, half-close after a queue, and
// every buffer back in its pool after close (proxy/transport/transport.hpp).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "proxy/transport/tcp_transport.hpp"
#include "tests/unit/proxy/loopback_pair.hpp"

using namespace sy;
using sy::test::Pair;
using sy::test::Recorder;

namespace {

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
