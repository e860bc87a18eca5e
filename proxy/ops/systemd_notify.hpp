// systemd's readiness protocol (sd_notify(3)), for a unit with Type=notify and
// NotifyAccess=all (conf/switchyard.service). Without NOTIFY_SOCKET every call does nothing.
#pragma once

namespace sy {

// The listeners accept: READY=1. After a binary upgrade, from the new process, also
// MAINPID= this process, so that systemd follows it.
void notify_ready(bool took_over);
// SIGHUP: RELOADING=1 now, READY=1 when done.
void notify_reloading();
// SIGTERM/SIGINT: STOPPING=1.
void notify_stopping();

}  // namespace sy
