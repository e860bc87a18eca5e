#include "proxy/stream_writer.hpp"

#include <cstring>
#include <memory>
#include <string>

namespace sy {

// A queued write: owns the copy of the bytes the kernel did not take at once.
struct StreamWriter::Request {
    uv_write_t req;
    StreamWriter* writer;
    std::string data;
};

void StreamWriter::uncork() {
    if (!corked_) return;
    corked_ = false;
    if (cork_ == nullptr || cork_->empty()) return;
    uv_buf_t buf = uv_buf_init(cork_->data(), static_cast<unsigned>(cork_->size()));
    send(&buf, 1, cork_->size());  // copies what the kernel does not take
    cork_->clear();
}

bool StreamWriter::write(std::initializer_list<std::string_view> pieces) {
    if (failed_) return false;
    // Bytes count when accepted, corked or not, so a log line written while corked is right.
    if (corked_) {
        if (cork_ == nullptr) cork_ = std::make_unique<std::string>();
        for (std::string_view p : pieces) {
            cork_->append(p);
            bytes_ += p.size();
        }
        return true;
    }
    uv_buf_t bufs[8];
    unsigned n = 0;
    std::size_t total = 0;
    for (std::string_view p : pieces) {
        if (p.empty()) continue;
        bufs[n++] = uv_buf_init(const_cast<char*>(p.data()), static_cast<unsigned>(p.size()));
        total += p.size();
    }
    if (total == 0) return true;
    bytes_ += total;
    return send(bufs, n, total);
}

bool StreamWriter::send(const uv_buf_t* bufs, unsigned n, std::size_t total) {
    if (failed_) return false;
    std::size_t sent = 0;
    if (queued_ == 0) {
        int r = uv_try_write(stream_, bufs, n);
        if (r > 0) {
            sent = static_cast<std::size_t>(r);
        } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
            fail(r);
            return false;
        }
    }
    if (sent == total) return true;

    auto request = std::make_unique<Request>();
    request->writer = this;
    request->data.reserve(total - sent);
    std::size_t skip = sent;
    for (unsigned i = 0; i < n; ++i) {
        std::size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        request->data.append(bufs[i].base + skip, len - skip);
        skip = 0;
    }
    uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
    std::size_t size = request->data.size();
    request->req.data = request.get();
    int r = uv_write(&request->req, stream_, &buf, 1, &StreamWriter::on_write);
    if (r != 0) {
        fail(r);
        return false;
    }
    queued_ += size;
    request.release();  // owned by libuv until on_write
    return true;
}

void StreamWriter::on_write(uv_write_t* req, int status) {
    std::unique_ptr<Request> request(static_cast<Request*>(req->data));
    StreamWriter& self = *request->writer;
    self.queued_ -= request->data.size();
    if (status < 0) {
        self.fail(status);
        return;
    }
    if (self.queued_ == 0 && !self.failed_) self.owner_.on_writer_drained(self);
}

void StreamWriter::fail(int status) {
    if (failed_) return;
    failed_ = true;
    owner_.on_writer_failed(*this, status);
}

}  // namespace sy
