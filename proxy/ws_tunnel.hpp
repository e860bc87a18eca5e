// The terminated WebSocket (docs/upgrades.md, "Terminating WebSocket"): after the proxy's own
// 101, the client speaks WebSocket frames and the upstream is a plain TCP service. The
// pump turns the payload of the client's data frames into raw bytes toward the upstream,
// and each read from the upstream into one binary frame toward the client (with the
// `base64` subprotocol: text payloads are base64-decoded, upstream bytes go as text frames
// of their base64).
//
// Copies: a client read is unmasked in place, its payloads packed at the start of the very
// buffer they were read into, which then goes to the upstream as it is (no copy). An
// upstream read lands kMaxServerFrameHeader bytes into its buffer, the frame header is
// written right before the payload, and header and payload leave in one write (no copy).
// Only base64 copies, as it encodes or decodes.
//
// Backpressure, byte counters, tunnel_idle and the owner's end are the raw tunnel's
// (proxy/tunnel.hpp): a side is read only while nothing is queued toward the other. The
// ends (RFC 6455 §5.5.1, §7):
//   - the client's close frame: answered with a close (same code, 1000 when none), then a
//     write shutdown toward the upstream; the tunnel ends when both are out;
//   - the upstream's EOF: close 1000 to the client, whose data still reaches the upstream
//     until its close frame arrives (then the end) or 5 s pass;
//   - an upstream reset or error: close 1011, then the end at the client's close or 5 s;
//   - a broken framing rule: close 1002 / 1007 / 1009, nothing more read from the client
//     but discarded, a write shutdown after the close, the end at the client's EOF or 5 s;
//   - the client's EOF without a close: a write shutdown toward the upstream, whose bytes
//     still reach the client until its EOF (then close 1000 and the end);
//   - tunnel_idle or the drain deadline: a best-effort close 1001, and the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <uv.h>

#include "parser/base64.hpp"
#include "parser/ws_frame.hpp"
#include "proxy/tunnel.hpp"

namespace sy {

class WsTunnel final : public TunnelBase {
public:
    struct Options {
        std::size_t buffer = 256 * 1024;   // tunnel.buffer
        std::uint64_t max_message = 0;     // upgrade.max_message (0: any size)
        bool base64 = false;               // the base64 subprotocol was selected
    };
    // `pool`: the worker's I/O buffers, which both transports read into.
    WsTunnel(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end, BufferPool& pool,
             Options options);
    ~WsTunnel() override;

    // `from_client`: what the client sent after its request (its first frames), read
    // before anything else; then the tunnel becomes both transports' user and reads both.
    void start(std::string_view from_client);

private:
    enum class Closing : std::uint8_t {
        open,
        by_client,    // the client's close was answered; the end once both directions are out
        by_upstream,  // close 1000 sent after the upstream's EOF; the client may still send data
        by_error,     // close 1011 sent after the upstream broke; the client's data goes nowhere
        by_protocol,  // close 1002/1007/1009 sent; client bytes are discarded
    };

    void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) override;
    void on_transport_read_end(Transport& t, int status) override;
    void on_transport_drained(Transport& t) override;
    void on_transport_write_failed(Transport& t, int status) override;
    void on_transport_shutdown(Transport& t, int status) override;
    void on_end(TunnelEnd how) override;

    void on_client_bytes(BufferPool::Buffer* buf, std::size_t len);
    void on_upstream_bytes(BufferPool::Buffer* buf, std::size_t len);
    // Write buf->data()[offset, offset + len) (taking `buf`) toward one side.
    void to_upstream(BufferPool::Buffer* buf, std::size_t offset, std::size_t len);
    void frame_to_client(BufferPool::Buffer* buf, std::size_t offset, std::size_t len);
    // A control frame (close, pong) to the client, behind what is queued.
    void control_to_client(const std::string& frame);
    void on_client_close(std::uint16_t code);
    void on_upstream_end(int status);
    void on_client_end(int status);
    void fail_protocol(std::uint16_t code, const char* why);
    // Sends close `code` and starts the 5 s wait for the client's reply.
    void send_close(std::uint16_t code, Closing why);
    // The bound on waiting for the client once the close handshake has begun.
    void start_close_timer();
    void shutdown_upstream();
    void shutdown_client();
    void maybe_finish();
    void update_reading();
    // After a broken rule the client's bytes are not parsed any more, only discarded.
    bool discarding_client() const { return closing_ == Closing::by_protocol; }
    static void on_close_timer(uv_timer_t* timer);

    BufferPool& pool_;
    Options options_;
    WsFrameReader reader_;
    Base64Decoder base64_;
    uv_timer_t* close_timer_ = nullptr;  // the 5 s wait after our close frame
    TunnelEnd end_reason_ = TunnelEnd::eof;
    Closing closing_ = Closing::open;
    bool client_eof_ = false;
    bool upstream_eof_ = false;
    bool upstream_gone_ = false;              // reset, error or a failed write: nothing more to it
    bool upstream_shutdown_requested_ = false;
    bool upstream_shutdown_done_ = false;
    bool client_shutdown_requested_ = false;
};

}  // namespace sy
