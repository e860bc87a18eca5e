// Fixed-size I/O buffers for tunnels, taken per read and given back as soon as their bytes
// are written, so buffers exist only while bytes flow: an idle tunnel holds none. Each
// buffer carries the write request that sends it, so a partial write needs no copy.
// One pool per worker (single-threaded).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

#include <uv.h>

namespace sy {

class BufferPool {
public:
    struct Buffer {
        uv_write_t req;        // the write that sends this buffer's bytes, when one is pending
        BufferPool* pool;
        void* owner;           // who is told when the write ends; null once orphaned
        int side;              // the owner's direction index
        std::size_t pending;   // bytes of the pending write
        char* data() { return reinterpret_cast<char*>(this + 1); }
        static Buffer* of(char* data) { return reinterpret_cast<Buffer*>(data) - 1; }
    };

    // `size` bytes of data per buffer; at most `keep` free buffers are kept for reuse.
    BufferPool(std::size_t size, std::size_t keep) : size_(size), keep_(keep) {}
    ~BufferPool() {
        for (Buffer* b : free_) ::operator delete(b);
    }
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    Buffer* take() {
        ++lent_;
        if (!free_.empty()) {
            Buffer* b = free_.back();
            free_.pop_back();
            return b;
        }
        auto* b = static_cast<Buffer*>(::operator new(sizeof(Buffer) + size_));
        b->pool = this;
        return b;
    }

    void give(Buffer* b) {
        --lent_;
        b->owner = nullptr;
        if (free_.size() < keep_) {
            free_.push_back(b);
        } else {
            ::operator delete(b);
        }
    }

    std::size_t size() const { return size_; }
    // Buffers taken and not given back yet (a leak check for tests).
    std::size_t lent() const { return lent_; }

private:
    std::size_t size_;
    std::size_t keep_;
    std::size_t lent_ = 0;
    std::vector<Buffer*> free_;
};

}  // namespace sy
