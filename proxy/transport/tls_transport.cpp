#include "proxy/transport/tls_transport.hpp"

#include <algorithm>

#include <openssl/err.h>

#include "proxy/transport/tls_context.hpp"
#include "proxy/uv_util.hpp"

namespace sy {

TlsTransport::TlsTransport(uv_loop_t* loop, TcpTransport* inner, SSL* ssl, BufferPool& buffers)
    : loop_(loop), inner_(inner), ssl_(ssl), rbio_(BIO_new(BIO_s_mem())), wbio_(BIO_new(BIO_s_mem())), buffers_(buffers) {
    BIO_set_mem_eof_return(rbio_, -1);  // no ciphertext yet means "retry", not EOF
    SSL_set_bio(ssl_, rbio_, wbio_);
    inner_->set_user(this);
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

bool TlsTransport::wants_ciphertext() const { return handshaking_ || reading_; }

bool TlsTransport::start_reading() {
    if (closing_) return false;
    const bool was = reading_;
    reading_ = true;
    if (!inner_->start_reading() && inner_end_ == 0) return false;
    if (was) return true;
    // A client speaks first; plaintext decrypted or ciphertext received while nobody read
    // is handed over from the loop, not from inside this call.
    const bool client_start = handshaking_ && !SSL_is_server(ssl_);
    const bool waiting = !handshaking_ && (SSL_pending(ssl_) > 0 || BIO_ctrl_pending(rbio_) > 0 ||
                                           (inner_end_ != 0 && !eof_told_));
    if (client_start || waiting) defer_advance();
    return true;
}

void TlsTransport::stop_reading() {
    reading_ = false;
    if (!handshaking_) inner_->stop_reading();
}

void TlsTransport::defer_advance() {
    if (deferred_ == nullptr) {
        deferred_ = new uv_timer_t;
        uv_timer_init(loop_, deferred_);
        deferred_->data = this;
    }
    uv_timer_start(deferred_, &TlsTransport::on_deferred, 0, 0);
}

void TlsTransport::on_deferred(uv_timer_t* timer) {
    auto* self = static_cast<TlsTransport*>(timer->data);
    if (self == nullptr || self->closing_) return;
    if (self->advance() && !self->wants_ciphertext()) self->inner_->stop_reading();
}

void TlsTransport::preload_ciphertext(std::string_view bytes) {
    if (bytes.empty()) return;
    BIO_write(rbio_, bytes.data(), static_cast<int>(bytes.size()));
    // No socket read will announce these (they may be the whole ClientHello): the handshake
    // goes on from the loop.
    defer_advance();
}

void TlsTransport::on_transport_read(Transport&, BufferPool::Buffer* buf, std::size_t len) {
    BIO_write(rbio_, buf->data(), static_cast<int>(len));
    buf->pool->give(buf);
    if (advance() && !wants_ciphertext()) inner_->stop_reading();
}

void TlsTransport::on_transport_read_end(Transport&, int status) {
    inner_end_ = status;
    if (handshaking_ || reading_) advance();
}

void TlsTransport::record_ssl_error(const char* what) { error_ = ssl_error_text(what); }

void TlsTransport::fail(const char* what, int status) {
    if (error_.empty()) error_ = what;
    reading_ = false;
    inner_->stop_reading();
    if (eof_told_ || user_ == nullptr) return;
    eof_told_ = true;
    user_->on_transport_read_end(*this, status);
}

bool TlsTransport::advance() {
    if (closing_) return false;
    if (handshaking_) {
        const int r = SSL_do_handshake(ssl_);
        if (!flush_ciphertext()) return false;
        if (r != 1) {
            const int err = SSL_get_error(ssl_, r);
            if (err == SSL_ERROR_WANT_READ && inner_end_ == 0) return true;
            if (err == SSL_ERROR_WANT_READ) {
                fail("connection closed during the TLS handshake", inner_end_ == UV_EOF ? UV_ECONNRESET : inner_end_);
            } else {
                record_ssl_error("TLS handshake failed");
                fail("TLS handshake failed", UV_EPROTO);
            }
            return false;
        }
        handshaking_ = false;
        const bool had_plain = !plain_.empty();
        if (!encrypt_pending()) return false;
        // What was written during the handshake is out: say so, as a write that the TCP
        // transport took at once brings no drained event of its own.
        if (had_plain && queued() == 0 && user_ != nullptr) user_->on_transport_drained(*this);
        if (closing_) return false;
        if (!reading_) inner_->stop_reading();
    }
    while (reading_ && user_ != nullptr && !closing_ && !eof_told_) {
        BufferPool::Buffer* b = buffers_.take();
        const std::size_t limit = std::min<std::size_t>(buffers_.size() - read_headroom_, read_limit_);
        const int n = SSL_read(ssl_, b->data() + read_headroom_, static_cast<int>(limit));
        if (n > 0) {
            user_->on_transport_read(*this, b, static_cast<std::size_t>(n));  // may stop or close
            continue;
        }
        buffers_.give(b);
        const int err = SSL_get_error(ssl_, n);
        if (!flush_ciphertext()) return false;  // e.g. the answer to a KeyUpdate
        if (err == SSL_ERROR_WANT_READ) {
            if (inner_end_ == 0) return true;
            // The TCP stream ended without close_notify: an end all the same (browsers
            // often close that way); a reset stays a reset.
            fail("connection closed without close_notify", inner_end_);
            return false;
        }
        if (err == SSL_ERROR_ZERO_RETURN) {  // the peer's close_notify: its EOF
            fail("", UV_EOF);
            return false;
        }
        record_ssl_error("TLS record error");
        fail("TLS record error", UV_EPROTO);
        return false;
    }
    return !closing_;
}

bool TlsTransport::flush_ciphertext() {
    std::size_t pending;
    while ((pending = BIO_ctrl_pending(wbio_)) > 0) {
        BufferPool::Buffer* b = buffers_.take();
        const int n = BIO_read(wbio_, b->data(), static_cast<int>(std::min(pending, buffers_.size())));
        if (n <= 0) {
            buffers_.give(b);
            break;
        }
        if (inner_->write_buffer(b, static_cast<std::size_t>(n)) == Written::failed) return false;
    }
    return true;
}

bool TlsTransport::encrypt_pending() {
    if (handshaking_ || plain_.empty()) return !write_failed_;
    const bool ok = encrypt(plain_.data(), plain_.size());
    plain_.clear();
    return ok;
}

bool TlsTransport::encrypt(const char* data, std::size_t len) {
    if (SSL_write(ssl_, data, static_cast<int>(len)) <= 0) {
        record_ssl_error("TLS write failed");
        on_transport_write_failed(*inner_, UV_EPROTO);
        return false;
    }
    return flush_ciphertext();
}

bool TlsTransport::write(std::initializer_list<std::string_view> pieces) {
    if (write_failed_ || closing_) return false;
    if (pieces.size() == 1 && !corked_ && !handshaking_ && plain_.empty()) {
        // One piece with nothing before it: encrypted from where it is, no copy.
        const std::string_view p = *pieces.begin();
        if (p.empty()) return true;
        bytes_written_ += p.size();
        return encrypt(p.data(), p.size());
    }
    std::string& to = corked_ ? cork_ : plain_;
    for (std::string_view p : pieces) {
        to.append(p);
        bytes_written_ += p.size();
    }
    return corked_ || encrypt_pending();
}

Transport::Written TlsTransport::write_buffer(BufferPool::Buffer* buf, std::size_t offset, std::size_t len) {
    if (write_failed_ || closing_) {
        buf->pool->give(buf);
        return Written::failed;
    }
    if (corked_ || handshaking_ || !plain_.empty()) {
        (corked_ ? cork_ : plain_).append(buf->data() + offset, len);
        buf->pool->give(buf);
        if (!corked_ && !encrypt_pending()) return Written::failed;
        return queued() > 0 ? Written::queued : Written::all;
    }
    const bool ok = encrypt(buf->data() + offset, len);
    buf->pool->give(buf);
    if (!ok) return Written::failed;
    return inner_->queued() > 0 ? Written::queued : Written::all;
}

void TlsTransport::uncork() {
    if (!corked_) return;
    corked_ = false;
    if (cork_.empty()) return;
    plain_.append(cork_);
    cork_.clear();
    encrypt_pending();
}

Transport::Shutdown TlsTransport::shutdown_write() {
    if (closing_ || write_failed_) return Shutdown::failed;
    if (!handshaking_) {
        if (!encrypt_pending()) return Shutdown::failed;
        SSL_shutdown(ssl_);  // our close_notify; reading goes on (half-close)
        if (!flush_ciphertext()) return Shutdown::failed;
    }
    return inner_->shutdown_write();
}

void TlsTransport::on_transport_drained(Transport&) {
    if (closing_ || !plain_.empty() || user_ == nullptr) return;
    user_->on_transport_drained(*this);
}

void TlsTransport::on_transport_write_failed(Transport&, int status) {
    if (write_failed_) return;
    write_failed_ = true;
    if (!closing_ && user_ != nullptr) user_->on_transport_write_failed(*this, status);
}

void TlsTransport::on_transport_shutdown(Transport&, int status) {
    if (!closing_ && user_ != nullptr) user_->on_transport_shutdown(*this, status);
}

void TlsTransport::close(ClosedCallback closed, void* arg) {
    if (closing_) return;
    closing_ = true;
    user_ = nullptr;
    reading_ = false;
    set_closed_callback(closed, arg);
    close_and_free(deferred_);
    inner_->close(&TlsTransport::on_inner_closed, this);
}

void TlsTransport::on_inner_closed(void* self) { finish_close(static_cast<TlsTransport*>(self)); }

}  // namespace sy
