// The binary upgrade's pieces (proxy/handoff/): the channel's messages as tables (every
// field round-trips; every cut, extra byte or wrong type is refused), descriptors passed
// over a real socket pair, and a TCP transport given up with writes queued: its duplicate
// and the unwritten bytes it reports carry the stream on exactly.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/handoff/handoff_channel.hpp"
#include "proxy/handoff/handoff_wire.hpp"
#include "proxy/transport/tcp_transport.hpp"
#include "tests/unit/proxy/loopback_pair.hpp"

using namespace sy;

namespace {

HandedTunnel sample(std::size_t to_client, std::size_t to_upstream, std::uint8_t flags) {
    HandedTunnel t;
    t.route = "chat";
    t.upstream = "app";
    t.server = "127.0.0.1:9001";
    t.protocol = "websocket";
    t.method = "GET";
    t.target = "/chat?room=1";
    t.client = "127.0.0.1";
    t.bytes = {0x0102030405060708ull, 42};
    t.age_ms = 123456789;
    t.idle_ms = 17;
    t.request_ms = 4;
    t.sides[0].unwritten.assign(to_client, 'c');
    t.sides[1].unwritten.assign(to_upstream, 'u');
    t.sides[0].eof_read = (flags & 1) != 0;
    t.sides[0].shutdown_requested = (flags & 2) != 0;
    t.sides[0].shutdown_done = (flags & 4) != 0;
    t.sides[1].eof_read = (flags & 8) != 0;
    t.sides[1].shutdown_requested = (flags & 16) != 0;
    t.sides[1].shutdown_done = (flags & 32) != 0;
    return t;
}

bool same_except_bytes(const HandedTunnel& a, const HandedTunnel& b) {
    bool sides = true;
    for (int i = 0; i < 2; ++i) {
        sides = sides && a.sides[i].eof_read == b.sides[i].eof_read &&
                a.sides[i].shutdown_requested == b.sides[i].shutdown_requested &&
                a.sides[i].shutdown_done == b.sides[i].shutdown_done;
    }
    return sides && a.route == b.route && a.upstream == b.upstream && a.server == b.server && a.protocol == b.protocol &&
           a.method == b.method && a.target == b.target && a.client == b.client && a.bytes == b.bytes &&
           a.age_ms == b.age_ms && a.idle_ms == b.idle_ms && a.request_ms == b.request_ms;
}

}  // namespace

TEST_CASE("tunnel records round-trip every field, and the queued byte counts") {
    struct Case {
        std::size_t to_client, to_upstream;
        std::uint8_t flags;
    };
    const Case cases[] = {{0, 0, 0}, {1, 0, 1 | 2 | 4}, {0, 1, 8 | 16}, {70000, 3, 63}, {5, 200000, 2}};
    for (const Case& c : cases) {
        CAPTURE(c.to_client);
        CAPTURE(c.to_upstream);
        const HandedTunnel t = sample(c.to_client, c.to_upstream, c.flags);
        const std::string bytes = encode_tunnel(t);
        CHECK(message_type(bytes) == HandoffMessage::tunnel);
        HandedTunnel out;
        out.sides[0].unwritten = "stale";
        std::uint64_t to_client = 99, to_upstream = 99;
        REQUIRE(decode_tunnel(bytes, &out, &to_client, &to_upstream));
        CHECK(same_except_bytes(t, out));
        CHECK(to_client == c.to_client);
        CHECK(to_upstream == c.to_upstream);
        CHECK(out.sides[0].unwritten.empty());
        // Every cut and one byte too many are refused.
        for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
            CAPTURE(cut);
            CHECK_FALSE(decode_tunnel(std::string_view(bytes).substr(0, cut), &out, &to_client, &to_upstream));
        }
        CHECK_FALSE(decode_tunnel(bytes + "x", &out, &to_client, &to_upstream));
    }
}

TEST_CASE("the small messages: pid, listener key, end of listeners, data chunks") {
    std::uint32_t pid = 0;
    const std::string ready = encode_pid_message(HandoffMessage::ready, 4242);
    CHECK(decode_pid_message(ready, HandoffMessage::ready, &pid));
    CHECK(pid == 4242);
    CHECK_FALSE(decode_pid_message(ready, HandoffMessage::listening, &pid));  // the type counts
    CHECK_FALSE(decode_pid_message(ready.substr(0, 4), HandoffMessage::ready, &pid));
    CHECK_FALSE(decode_pid_message(ready + '\0', HandoffMessage::ready, &pid));

    std::string key;
    CHECK(decode_listener(encode_listener("listen 127.0.0.1:0"), &key));
    CHECK(key == "listen 127.0.0.1:0");
    CHECK(decode_listener(encode_listener(""), &key));
    CHECK(key.empty());
    CHECK_FALSE(decode_listener(encode_listener("abc").substr(0, 6), &key));

    CHECK(message_type(encode_listeners_done()) == HandoffMessage::listeners_done);
    CHECK_FALSE(message_type("").has_value());

    std::string_view chunk;
    const std::string data = encode_tunnel_data(std::string("a\0b", 3));
    REQUIRE(decode_tunnel_data(data, &chunk));
    CHECK(chunk == std::string_view("a\0b", 3));
    CHECK_FALSE(decode_tunnel_data(data.substr(0, data.size() - 1), &chunk));
    CHECK_FALSE(decode_tunnel_data(data + "z", &chunk));
}

TEST_CASE("messages keep their boundaries and their descriptors over the channel") {
    int pair[2];
    std::string error;
    REQUIRE(handoff_socketpair(pair, &error));
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    REQUIRE(send_handoff_message(pair[0], "first", {pipe_fds[0], pipe_fds[1]}, &error));
    REQUIRE(send_handoff_message(pair[0], std::string(kHandoffChunk + 100, 'x'), {}, &error));
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);

    std::string bytes;
    std::vector<int> fds;
    REQUIRE(recv_handoff_message(pair[1], &bytes, &fds, &error, 1000) == Received::message);
    CHECK(bytes == "first");
    REQUIRE(fds.size() == 2);
    CHECK((::fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
    // The descriptors are the pipe's ends: a byte goes through.
    CHECK(::write(fds[1], "!", 1) == 1);
    char c = 0;
    CHECK(::read(fds[0], &c, 1) == 1);
    CHECK(c == '!');
    for (int fd : fds) ::close(fd);
    fds.clear();
    REQUIRE(recv_handoff_message(pair[1], &bytes, &fds, &error, 1000) == Received::message);
    CHECK(bytes.size() == kHandoffChunk + 100);
    CHECK(fds.empty());
    CHECK(recv_handoff_message(pair[1], &bytes, &fds, &error, 0) == Received::nothing);
    ::close(pair[0]);
    CHECK(recv_handoff_message(pair[1], &bytes, &fds, &error, 1000) == Received::closed);
    ::close(pair[1]);
}

TEST_CASE("a transport given up with writes queued: its duplicate and unwritten bytes continue the stream exactly") {
    sy::test::Pair p;
    sy::test::Recorder server_events;
    p.server->set_user(&server_events);
    // The server does not read yet: copied and zero-copy writes fill the socket, then queue.
    std::string sent;
    std::size_t n = 0;
    auto next_bytes = [&](std::size_t len) {
        std::string s;
        for (std::size_t i = 0; i < len; ++i, ++n) s.push_back(static_cast<char>(n * 13 % 251));
        return s;
    };
    while (p.client->queued() < 3 * 256 * 1024) {
        const std::string copied = next_bytes(10'000);
        REQUIRE(p.client->write(copied));
        sent += copied;
        const std::string zero_copy = next_bytes(100'000);
        BufferPool::Buffer* b = p.pool.take();
        std::memcpy(b->data() + 7, zero_copy.data(), zero_copy.size());
        REQUIRE(p.client->write_buffer(b, 7, zero_copy.size()) != Transport::Written::failed);
        sent += zero_copy;
    }
    std::string unwritten;
    const int fd = p.client->detach_for_handoff(&unwritten);
    REQUIRE(fd >= 0);
    CHECK(unwritten.size() == p.client->queued());
    // Closing the transport cancels its queued writes and sends no FIN (the duplicate
    // keeps the socket); every buffer comes back.
    p.client->close();
    p.client = nullptr;
    auto* successor = new TcpTransport(&p.loop, p.pool);
    REQUIRE(successor->open(fd));
    REQUIRE(successor->write(unwritten));
    REQUIRE(p.server->start_reading());
    p.run_until([&] { return server_events.received.size() >= sent.size(); });
    CHECK(server_events.received.size() == sent.size());
    CHECK(server_events.received == sent);
    CHECK(server_events.ends.empty());  // no EOF came from the close
    p.client = successor;
    p.close_both();
    CHECK(p.pool.lent() == 0);
}
