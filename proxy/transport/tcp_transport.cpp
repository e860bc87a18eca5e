#include "proxy/transport/tcp_transport.hpp"

#include <cerrno>

#include <cstddef>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sy {

TcpTransport::TcpTransport(uv_loop_t* loop, BufferPool& buffers)
    : buffers_(buffers), writer_(reinterpret_cast<uv_stream_t*>(&tcp_), *this) {
    uv_tcp_init(loop, &tcp_);
    tcp_.data = this;
}

bool TcpTransport::start_reading() {
    if (reading_) return true;
    if (closing_ || uv_read_start(stream(), &TcpTransport::on_alloc, &TcpTransport::on_read) != 0) return false;
    reading_ = true;
    return true;
}

void TcpTransport::stop_reading() {
    if (!reading_) return;
    uv_read_stop(stream());
    reading_ = false;
}

// libuv (1.x) keeps a stream's queued writes in order in `write_queue` (uv_write_t::queue),
// each with bufs[write_index, nbufs) still to send, the first of them advanced past what a
// partial write took. Their sum must equal the stream's write_queue_size, checked here so
// that a libuv that stores them differently refuses the hand-off instead of losing bytes.
int TcpTransport::detach_for_handoff(std::string* unwritten) {
    if (closing_ || write_failed_ || writer_.corked()) return -1;
    unwritten->clear();
    void** head = reinterpret_cast<void**>(&tcp_.write_queue);
    for (void** q = static_cast<void**>(head[0]); q != head; q = static_cast<void**>(q[0])) {
        auto* req = reinterpret_cast<uv_write_t*>(reinterpret_cast<char*>(q) - offsetof(uv_write_t, queue));
        for (unsigned i = req->write_index; i < req->nbufs; ++i) unwritten->append(req->bufs[i].base, req->bufs[i].len);
    }
    if (unwritten->size() != uv_stream_get_write_queue_size(stream())) return -1;
    int fd = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0) return -1;
    return ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int TcpTransport::splice_fd() const {
    int fd = -1;
    return uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) == 0 ? fd : -1;
}

bool TcpTransport::input_waiting() const {
    int waiting = 0;
    const int fd = splice_fd();
    return fd >= 0 && ::ioctl(fd, FIONREAD, &waiting) == 0 && waiting > 0;
}

void TcpTransport::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<TcpTransport*>(handle->data);
    if (self->report_readable_) {
        // No buffer: libuv then reports the readable socket as UV_ENOBUFS without reading.
        *buf = uv_buf_init(nullptr, 0);
        return;
    }
    BufferPool::Buffer* b = self->buffers_.take();
    const std::size_t limit = self->read_limit_;
    const std::size_t room = self->buffers_.size() - self->read_headroom_;
    const std::size_t len = room < limit ? room : limit;
    *buf = uv_buf_init(b->data() + self->read_headroom_, static_cast<unsigned>(len));
}

void TcpTransport::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<TcpTransport*>(stream->data);
    if (nread == UV_ENOBUFS && buf->base == nullptr && self->report_readable_ && self->user_ != nullptr) {
        self->user_->on_transport_readable(*self);
        return;
    }
    BufferPool::Buffer* b = buf->base != nullptr ? BufferPool::Buffer::of(buf->base - self->read_headroom_) : nullptr;
    if (nread > 0 && self->user_ != nullptr) {
        self->user_->on_transport_read(*self, b, static_cast<std::size_t>(nread));
        return;
    }
    if (b != nullptr) self->buffers_.give(b);  // nread 0 is EAGAIN: the buffer comes back
    if (nread >= 0 || self->user_ == nullptr) return;
    self->stop_reading();
    self->user_->on_transport_read_end(*self, static_cast<int>(nread));
}

bool TcpTransport::write(std::initializer_list<std::string_view> pieces) {
    if (write_failed_ || closing_) return false;
    return writer_.write(pieces);
}

Transport::Written TcpTransport::write_buffer(BufferPool::Buffer* b, std::size_t offset, std::size_t len) {
    if (write_failed_ || closing_) {
        b->pool->give(b);
        return Written::failed;
    }
    if (writer_.corked()) {  // behind what the cork collects: copied with it
        const bool ok = writer_.write(std::string_view(b->data() + offset, len));
        b->pool->give(b);
        return ok ? Written::queued : Written::failed;
    }
    uv_buf_t data = uv_buf_init(b->data() + offset, static_cast<unsigned>(len));
    // libuv answers UV_EAGAIN while earlier writes are queued, so order is kept.
    const int sent = uv_try_write(stream(), &data, 1);
    if (sent == static_cast<int>(len)) {
        b->pool->give(b);
        return Written::all;
    }
    if (sent < 0 && sent != UV_EAGAIN) {
        b->pool->give(b);
        fail_write(sent);
        return Written::failed;
    }
    // The kernel took part of it (or nothing): the rest is written from this very buffer.
    const std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
    uv_buf_t rest = uv_buf_init(b->data() + offset + done, static_cast<unsigned>(len - done));
    b->owner = this;
    b->pending = len - done;
    b->req.data = b;
    if (uv_write(&b->req, stream(), &rest, 1, &TcpTransport::on_buffer_written) != 0) {
        b->pool->give(b);
        fail_write(UV_EPIPE);
        return Written::failed;
    }
    buffer_bytes_queued_ += b->pending;
    return Written::queued;
}

// Runs before the handle's close callback, also for writes a close cancels.
void TcpTransport::on_buffer_written(uv_write_t* req, int status) {
    auto* b = static_cast<BufferPool::Buffer*>(req->data);
    auto* self = static_cast<TcpTransport*>(b->owner);
    self->buffer_bytes_queued_ -= b->pending;
    b->pool->give(b);
    if (self->closing_ || self->write_failed_) return;
    if (status < 0) {
        self->fail_write(status);
        return;
    }
    if (self->queued() == 0 && self->user_ != nullptr) self->user_->on_transport_drained(*self);
}

void TcpTransport::on_writer_drained(StreamWriter&) {
    if (closing_ || buffer_bytes_queued_ != 0 || user_ == nullptr) return;
    user_->on_transport_drained(*this);
}

void TcpTransport::on_writer_failed(StreamWriter&, int status) {
    if (closing_) return;
    fail_write(status);
}

void TcpTransport::fail_write(int status) {
    if (write_failed_) return;
    write_failed_ = true;
    if (user_ != nullptr) user_->on_transport_write_failed(*this, status);
}

Transport::Shutdown TcpTransport::shutdown_write() {
    if (closing_ || write_failed_) return Shutdown::failed;
    if (queued() == 0) {
        // Nothing queued: shutdown(2) now. uv_shutdown would first wait for writability
        // (an epoll_ctl, an epoll_wait round, another epoll_ctl).
        int fd = -1;
        if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0 || ::shutdown(fd, SHUT_WR) != 0) {
            return Shutdown::failed;
        }
        return Shutdown::done;
    }
    // libuv shuts down once the queued writes are out.
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, stream(), &TcpTransport::on_shutdown) != 0) {
        delete req;
        return Shutdown::failed;
    }
    return Shutdown::pending;
}

// Runs before the handle's close callback, even after close() (status UV_ECANCELED).
void TcpTransport::on_shutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<TcpTransport*>(req->data);
    delete req;
    if (!self->closing_ && self->user_ != nullptr) self->user_->on_transport_shutdown(*self, status);
}

void TcpTransport::close(ClosedCallback closed, void* arg) {
    if (closing_) return;
    closing_ = true;
    set_closed_callback(closed, arg);
    user_ = nullptr;
    reading_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &TcpTransport::on_closed);
}

void TcpTransport::on_closed(uv_handle_t* handle) { finish_close(static_cast<TcpTransport*>(handle->data)); }

}  // namespace sy
