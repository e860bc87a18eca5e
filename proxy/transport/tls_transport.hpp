// TLS over a TCP transport, driven by OpenSSL 3 through memory BIOs from the event loop: no
// blocking call, no second loop; the handshake interleaves with everything else on the
// worker. Ciphertext from the TCP transport is fed to OpenSSL and the plaintext handed to the
// user in pool buffers; what the user writes is encrypted and handed to the TCP transport
// in pool buffers (zero copy below us). The user sees the same Transport as over plain TCP:
//   - reading: plaintext only while the user reads (otherwise the TCP transport stops too,
//     so backpressure works as over TCP); a close_notify, or a TCP EOF, is UV_EOF;
//   - writing before the handshake is done: kept as plaintext, encrypted once it is;
//   - shutdown_write: close_notify, then the TCP write side shuts down (half-close);
//   - queued(): plaintext not yet encrypted plus ciphertext the TCP transport holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <openssl/ssl.h>
#include <uv.h>

#include "proxy/transport/tcp_transport.hpp"

namespace sy {

class TlsTransport final : public Transport, private TransportUser {
public:
    // Takes `inner` (connected or accepted, nobody's user yet) and `ssl` (set up as server
    // or client; the BIOs are ours). The handshake starts at the first start_reading().
    TlsTransport(uv_loop_t* loop, TcpTransport* inner, SSL* ssl, BufferPool& buffers);
    bool input_waiting() const override { return inner_->input_waiting(); }

    bool handshake_done() const { return !handshaking_; }
    // Ciphertext that arrived before this transport existed (behind a PROXY header),
    // read before anything from the socket.
    void preload_ciphertext(std::string_view bytes);
    SSL* ssl() { return ssl_; }
    TcpTransport& tcp() { return *inner_; }
    // Why the handshake or a record failed (for the error log); empty otherwise.
    const std::string& error() const { return error_; }

    bool start_reading() override;
    void stop_reading() override;
    using Transport::write;
    bool write(std::initializer_list<std::string_view> pieces) override;
    using Transport::write_buffer;
    Written write_buffer(BufferPool::Buffer* buf, std::size_t offset, std::size_t len) override;
    void cork() override { corked_ = true; }
    void uncork() override;
    void drop_cork_buffer() override { std::string().swap(cork_); }
    std::size_t queued() const override { return plain_.size() + inner_->queued(); }
    std::uint64_t bytes_written() const override { return bytes_written_; }
    Shutdown shutdown_write() override;
    void close(ClosedCallback closed = nullptr, void* arg = nullptr) override;

private:
    ~TlsTransport() override;  // only through close()

    // The TCP transport's events.
    void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) override;
    void on_transport_read_end(Transport& t, int status) override;
    void on_transport_drained(Transport& t) override;
    void on_transport_write_failed(Transport& t, int status) override;
    void on_transport_shutdown(Transport& t, int status) override;

    static void on_inner_closed(void* self);
    static void on_deferred(uv_timer_t* timer);

    // Runs the handshake, then decrypts for the user while it reads. Returns false when
    // the transport failed (the user was told) or was closed from a callback.
    bool advance();
    // Encrypts plain_ (after the handshake) and moves ciphertext to the TCP transport.
    bool encrypt_pending();
    // SSL_write, then the ciphertext to the TCP transport; false (and the user told) on failure.
    bool encrypt(const char* data, std::size_t len);
    bool flush_ciphertext();
    void fail(const char* what, int status);
    void record_ssl_error(const char* what);
    void defer_advance();
    bool wants_ciphertext() const;

    uv_loop_t* loop_;
    TcpTransport* inner_;
    SSL* ssl_;
    BIO* rbio_;  // ciphertext in (owned by ssl_)
    BIO* wbio_;  // ciphertext out (owned by ssl_)
    BufferPool& buffers_;
    std::string plain_;   // written before the handshake finished, not encrypted yet
    std::string cork_;
    std::string error_;
    uv_timer_t* deferred_ = nullptr;  // created when plaintext waits for a reader
    std::uint64_t bytes_written_ = 0;
    int inner_end_ = 0;             // the TCP transport's read end status, once seen
    bool handshaking_ = true;
    bool corked_ = false;
    bool eof_told_ = false;         // the user got on_transport_read_end
    bool shutdown_pending_ = false; // close_notify sent, TCP shutdown waits for the queue
};

}  // namespace sy
