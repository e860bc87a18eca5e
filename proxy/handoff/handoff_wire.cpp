#include "proxy/handoff/handoff_wire.hpp"

namespace sy {

namespace {

// Little-endian fixed-width integers and length-prefixed strings.
class Out {
public:
    explicit Out(HandoffMessage type) { bytes_.push_back(static_cast<char>(type)); }
    Out& u8(std::uint8_t v) {
        bytes_.push_back(static_cast<char>(v));
        return *this;
    }
    Out& u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        return *this;
    }
    Out& u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        return *this;
    }
    Out& str(std::string_view s) {
        u32(static_cast<std::uint32_t>(s.size()));
        bytes_.append(s);
        return *this;
    }
    std::string take() { return std::move(bytes_); }

private:
    std::string bytes_;
};

class In {
public:
    In(std::string_view message, HandoffMessage type) : rest_(message) {
        ok_ = !rest_.empty() && static_cast<std::uint8_t>(rest_[0]) == static_cast<std::uint8_t>(type);
        if (ok_) rest_.remove_prefix(1);
    }
    bool u8(std::uint8_t* v) {
        if (!need(1)) return false;
        *v = static_cast<std::uint8_t>(rest_[0]);
        rest_.remove_prefix(1);
        return true;
    }
    template <typename T>
    bool uint(T* v) {
        if (!need(sizeof(T))) return false;
        T out = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) out |= static_cast<T>(static_cast<std::uint8_t>(rest_[i])) << (8 * i);
        rest_.remove_prefix(sizeof(T));
        *v = out;
        return true;
    }
    bool str(std::string* s) {
        std::uint32_t len = 0;
        if (!uint(&len) || !need(len)) return false;
        s->assign(rest_.substr(0, len));
        rest_.remove_prefix(len);
        return true;
    }
    std::string_view rest() const { return rest_; }
    // All read, nothing left over, no error on the way.
    bool done() const { return ok_ && rest_.empty(); }
    bool ok() const { return ok_; }

private:
    bool need(std::size_t n) {
        if (!ok_ || rest_.size() < n) ok_ = false;
        return ok_;
    }
    std::string_view rest_;
    bool ok_;
};

std::uint8_t side_flags(const HandedSide& s) {
    return static_cast<std::uint8_t>((s.eof_read ? 1 : 0) | (s.shutdown_requested ? 2 : 0) | (s.shutdown_done ? 4 : 0));
}

}  // namespace

std::string encode_pid_message(HandoffMessage type, std::uint32_t pid) { return Out(type).u32(pid).take(); }

std::string encode_listener(std::string_view key) { return Out(HandoffMessage::listener).str(key).take(); }

std::string encode_listeners_done() { return Out(HandoffMessage::listeners_done).take(); }

std::string encode_tunnel(const HandedTunnel& t) {
    Out out(HandoffMessage::tunnel);
    out.str(t.route).str(t.upstream).str(t.server).str(t.protocol).str(t.method).str(t.target).str(t.client);
    out.u64(t.bytes[0]).u64(t.bytes[1]).u64(t.age_ms).u64(t.idle_ms).u32(t.request_ms);
    for (const HandedSide& s : t.sides) out.u8(side_flags(s)).u64(s.unwritten.size());
    return out.take();
}

std::string encode_tunnel_data(std::string_view chunk) { return Out(HandoffMessage::tunnel_data).str(chunk).take(); }

std::optional<HandoffMessage> message_type(std::string_view message) {
    if (message.empty()) return std::nullopt;
    return static_cast<HandoffMessage>(static_cast<std::uint8_t>(message[0]));
}

bool decode_pid_message(std::string_view message, HandoffMessage type, std::uint32_t* pid) {
    In in(message, type);
    return in.uint(pid) && in.done();
}

bool decode_listener(std::string_view message, std::string* key) {
    In in(message, HandoffMessage::listener);
    return in.str(key) && in.done();
}

bool decode_tunnel(std::string_view message, HandedTunnel* t, std::uint64_t* to_client, std::uint64_t* to_upstream) {
    In in(message, HandoffMessage::tunnel);
    for (std::string* s : {&t->route, &t->upstream, &t->server, &t->protocol, &t->method, &t->target, &t->client}) {
        if (!in.str(s)) return false;
    }
    if (!in.uint(&t->bytes[0]) || !in.uint(&t->bytes[1]) || !in.uint(&t->age_ms) || !in.uint(&t->idle_ms) ||
        !in.uint(&t->request_ms)) {
        return false;
    }
    std::array<std::uint64_t, 2> lengths{};
    for (std::size_t i = 0; i < 2; ++i) {
        std::uint8_t flags = 0;
        if (!in.u8(&flags) || !in.uint(&lengths[i]) || flags > 7) return false;
        HandedSide& s = t->sides[i];
        s.unwritten.clear();
        s.eof_read = (flags & 1) != 0;
        s.shutdown_requested = (flags & 2) != 0;
        s.shutdown_done = (flags & 4) != 0;
    }
    *to_client = lengths[0];
    *to_upstream = lengths[1];
    return in.done();
}

bool decode_tunnel_data(std::string_view message, std::string_view* chunk) {
    In in(message, HandoffMessage::tunnel_data);
    std::uint32_t len = 0;
    if (!in.uint(&len) || in.rest().size() != len) return false;
    *chunk = in.rest();
    return true;
}

}  // namespace sy
