#include "proxy/ops/systemd_notify.hpp"

#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace sy {

void notify_ready(bool took_over) {
    if (took_over) {
        sd_notifyf(0, "MAINPID=%d\nREADY=1", static_cast<int>(::getpid()));
    } else {
        sd_notify(0, "READY=1");
    }
}

void notify_reloading() { sd_notify(0, "RELOADING=1"); }

void notify_stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace sy
