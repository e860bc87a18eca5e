// Every kind of configuration error, with its exact position. Each case is a whole file;
// the expected errors are ConfigError::to_string() without the leading "t.yaml:".
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "routing/config_loader.hpp"
#include "config_test_support.hpp"

namespace sy {
namespace {

const std::string kListen = "listen: [{ address: 127.0.0.1:8080 }]\n";
const std::string kUpstreams = "upstreams: { app: { servers: [127.0.0.1:9000] } }\n";
const std::string kRoutes = "routes: [{ upstream: app }]\n";
const std::string kBase = kListen + kUpstreams + kRoutes;  // lines 1-3; additions start at 4

using namespace config_test;

TEST_CASE("the base of the error cases is valid") {
    CHECK(errors_of(kBase).empty());
}

TEST_CASE("config errors: YAML syntax and document shape") {
    run({
        {"empty file", "", {" the configuration is empty (expected listen, upstreams and routes)"}},
        {"only a comment", "# nothing\n", {" the configuration is empty (expected listen, upstreams and routes)"}},
        {"top level is a list", "- listen\n",
         {"1:1: expected a map at the top level (with listen, upstreams and routes), got a list"}},
        {"top level is a scalar", "hello\n",
         {"1:1: expected a map at the top level (with listen, upstreams and routes), got 'hello'"}},
        {"unclosed flow sequence", "listen: [{ address: 127.0.0.1:8080 }\nupstreams: {}\n",
         {"2:1: invalid YAML: end of sequence flow not found"}},
        {"bad indentation", kBase + "workers: 1\n  tunnel: 2\n", {"5:9: invalid YAML: illegal map value"}},
        {"unquoted wildcard host", kBase + "x: *.example.com\n",
         {"4:4: invalid YAML: the referenced anchor is not defined (a value starting with '*' must be "
          "quoted, e.g. \"*.example.com\")"}},
        {"unquoted IPv6 address", "listen: [{ address: [::1]:8080 }]\n",
         {"1:26: invalid YAML: end of map flow not found"}},
        {"two documents", kBase + "---\nworkers: 2\n", {"4:1: only one YAML document is allowed"}},
        // YAML 1.2 §5.1: printable Unicode only; yaml-cpp misreads the rest.
        {"invalid UTF-8", kBase + "# caf\xE9\n", {"4:6: invalid UTF-8 (byte 0xE9)"}},
        {"truncated UTF-8 at the end", kBase + "# \xC3", {"4:3: invalid UTF-8 (byte 0xC3)"}},
        {"overlong UTF-8", kBase + "# \xC0\xAF\n", {"4:3: invalid UTF-8 (byte 0xC0)"}},
        {"UTF-8 surrogate", kBase + "# \xED\xA0\x80\n", {"4:3: invalid UTF-8 (byte 0xED)"}},
        {"NUL byte", kBase + std::string("workers: 1\0\n", 12), {"4:11: control character U+0000 is not allowed in YAML"}},
        {"escape byte", kBase + "# \x1b[31m\n", {"4:3: control character U+001B is not allowed in YAML"}},
        {"C1 control", kBase + "# \xC2\x9B\n", {"4:3: control character U+009B is not allowed in YAML"}},
        {"U+FFFF", kBase + "# \xEF\xBF\xBF\n", {"4:3: control character U+FFFF is not allowed in YAML"}},
    });
}

TEST_CASE("config text: byte order mark, non-ASCII text and CRLF line ends are fine") {
    CHECK(errors_of("\xEF\xBB\xBF" + kBase).empty());
    CHECK(errors_of(kBase + "# caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xC2\x85\n").empty());
    CHECK(errors_of("listen: [{ address: 127.0.0.1:8080 }]\r\nupstreams: { app: { servers: [127.0.0.1:9000] } }\r\n"
                    "routes: [{ upstream: app }]\r\n")
              .empty());
}

TEST_CASE("config errors: keys") {
    run({
        {"unknown top-level key, close", kBase + "upsteams: {}\n",
         {"4:1: unknown key 'upsteams' (did you mean 'upstreams'?)"}},
        {"unknown top-level key, transposed", kBase + "tunenl: {}\n",
         {"4:1: unknown key 'tunenl' (did you mean 'tunnel'?)"}},
        {"unknown top-level key, far", kBase + "frobnicate: 1\n",
         {"4:1: unknown key 'frobnicate' (expected one of: listen, workers, upstreams, routes, timeouts, "
          "limits, tunnel, forwarding, admin, access_log, pid_file)"}},
        {"unknown route key", kListen + kUpstreams + "routes:\n  - upsteam: app\n",
         {"4:5: unknown key 'upsteam' (did you mean 'upstream'?)", "4:5: missing required key 'upstream'"}},
        {"unknown match key", kListen + kUpstreams + "routes:\n  - match: { path_prefx: /a }\n    upstream: app\n",
         {"4:14: unknown key 'path_prefx' (did you mean 'path_prefix'?)"}},
        {"unknown upgrade key", kListen + kUpstreams + "routes:\n  - upstream: app\n    upgrade: { alow: [h2c] }\n",
         {"5:16: unknown key 'alow' (did you mean 'allow'?)"}},
        {"unknown listener key", "listen:\n  - address: 127.0.0.1:80\n    adress: 127.0.0.1:81\n" + kUpstreams + kRoutes,
         {"3:5: unknown key 'adress' (did you mean 'address'?)"}},
        {"unknown upstream key", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:1]\n    balanse: least_conn\n" + kRoutes,
         {"5:5: unknown key 'balanse' (did you mean 'balance'?)"}},
        {"unknown health key", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:1]\n    health: { max_fail: 3 }\n" + kRoutes,
         {"5:15: unknown key 'max_fail' (did you mean 'max_fails'?)"}},
        {"unknown check key", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:1]\n    health:\n      check: { url: /h }\n" + kRoutes,
         {"6:16: unknown key 'url' (expected one of: path, interval)"}},
        {"unknown timeouts key", kBase + "timeouts:\n  connect: 1s\n",
         {"5:3: unknown key 'connect' (expected one of: request_header, keepalive_idle, upstream_connect, "
          "upstream_response, tunnel_idle, shutdown_drain)"}},
        {"unknown limits key", kBase + "limits: { max_header: 10 }\n",
         {"4:11: unknown key 'max_header' (did you mean 'max_headers'?)"}},
        {"unknown tunnel key", kBase + "tunnel: { buffers: 1MiB }\n",
         {"4:11: unknown key 'buffers' (did you mean 'buffer'?)"}},
        {"unknown forwarding key", kBase + "forwarding: { x_forwarded_fro: true }\n",
         {"4:15: unknown key 'x_forwarded_fro' (did you mean 'x_forwarded_for'?)"}},
        {"unknown admin key", kBase + "admin: { address: 127.0.0.1:9901, adress: x }\n",
         {"4:35: unknown key 'adress' (did you mean 'address'?)"}},
        {"unknown access_log key", kBase + "access_log: { pth: a.log }\n",
         {"4:15: unknown key 'pth' (did you mean 'path'?)"}},
        {"unknown access_log key, far", kBase + "access_log: { file: a.log }\n",
         {"4:15: unknown key 'file' (expected one of: path, format)"}},
        {"duplicate key", kBase + "workers: 1\nworkers: 2\n", {"5:1: duplicate key 'workers'"}},
        {"duplicate upstream", kListen + "upstreams:\n  app: { servers: [127.0.0.1:1] }\n  app: { servers: [127.0.0.1:2] }\n" + kRoutes,
         {"4:3: duplicate key 'app'"}},
        {"list as a key", kBase + "? [a, b]\n: 1\n", {"4:3: expected a name as the key, got a list"}},
    });
}

TEST_CASE("config errors: route names, access_log format, pid_file") {
    run({
        {"a route name with a space", kListen + kUpstreams + "routes:\n  - name: \"my route\"\n    upstream: app\n",
         {"4:11: invalid route name 'my route' (expected 1 to 128 printable characters without spaces, quotes or "
          "backslashes)"}},
        {"an empty route name", kListen + kUpstreams + "routes:\n  - name: \"\"\n    upstream: app\n",
         {"4:11: invalid route name '' (expected 1 to 128 printable characters without spaces, quotes or "
          "backslashes)"}},
        {"two routes with one name",
         kListen + kUpstreams + "routes:\n  - name: chat\n    upstream: app\n  - name: chat\n    upstream: app\n",
         {"6:11: duplicate route name 'chat' (route 1 has it)"}},
        {"a name that another route has by default",
         kListen + kUpstreams + "routes:\n  - upstream: app\n  - name: route1\n    upstream: app\n",
         {"5:11: duplicate route name 'route1' (route 1 has it)"}},
        {"a default name that another route took",
         kListen + kUpstreams + "routes:\n  - name: route2\n    upstream: app\n  - upstream: app\n",
         {"4:11: route name 'route2' is the default name of route 2, which has no name of its own"}},
        {"an unknown access log format", kBase + "access_log: { format: xml }\n",
         {"4:23: invalid format 'xml' (expected one of: text, json)"}},
        {"an empty pid_file", kBase + "pid_file: \"\"\n",
         {"4:11: 'pid_file' must not be empty (leave the key out for no pid file)"}},
    });
}

TEST_CASE("config errors: terminate mode") {
    const std::string route = kListen + kUpstreams + "routes:\n  - upstream: app\n    upgrade:\n";
    run({
        {"terminate without websocket in allow", route + "      allow: [h2c]\n      terminate: websocket\n",
         {"7:18: terminate: websocket needs websocket in upgrade.allow"}},
        {"terminate without allow", route + "      terminate: websocket\n",
         {"6:18: terminate: websocket needs websocket in upgrade.allow"}},
        {"terminate of another protocol", route + "      allow: [websocket]\n      terminate: h2c\n",
         {"7:18: invalid terminate 'h2c' (expected one of: websocket)"}},
        {"an unknown subprotocol",
         route + "      allow: [websocket]\n      terminate: websocket\n      subprotocols: [binary, text]\n",
         {"8:30: invalid subprotocols 'text' (expected one of: binary, base64)"}},
        {"subprotocols without terminate", route + "      allow: [websocket]\n      subprotocols: [binary]\n",
         {"7:7: 'subprotocols' applies only with terminate: websocket"}},
        {"max_message without terminate", route + "      allow: [websocket]\n      max_message: 1MiB\n",
         {"7:7: 'max_message' applies only with terminate: websocket"}},
        {"a max_message of 0",
         route + "      allow: [websocket]\n      terminate: websocket\n      max_message: 0\n",
         {"8:20: 'max_message' must be at least 1 byte, got '0'"}},
    });
}

TEST_CASE("config errors: required keys and empty sections") {
    run({
        {"no required keys", "workers: 2\n",
         {"1:1: missing required key 'listen'", "1:1: missing required key 'upstreams'",
          "1:1: missing required key 'routes'"}},
        {"missing routes", kListen + kUpstreams, {"1:1: missing required key 'routes'"}},
        {"missing route upstream", kListen + kUpstreams + "routes:\n  - match: { path_prefix: / }\n",
         {"4:5: missing required key 'upstream'"}},
        {"missing listener address", "listen: [{}]\n" + kUpstreams + kRoutes,
         {"1:10: missing required key 'address'"}},
        {"empty listen list", "listen: []\n" + kUpstreams + kRoutes, {"1:9: 'listen' needs at least one listener"}},
        {"empty upstreams", kListen + "upstreams: {}\n" + kRoutes,
         {"2:12: 'upstreams' needs at least one upstream", "3:22: unknown upstream 'app'"}},
        {"empty routes", kListen + kUpstreams + "routes: []\n", {"3:9: 'routes' needs at least one route"}},
        {"upstream without servers", kListen + "upstreams:\n  app:\n    balance: least_conn\n" + kRoutes,
         {"4:5: upstream 'app' has no servers"}},
        {"upstream with an empty server list", kListen + "upstreams:\n  app:\n    servers: []\n" + kRoutes,
         {"4:14: upstream 'app' has no servers"}},
        {"admin without address", kBase + "admin: {}\n", {"4:8: missing required key 'address'"}},
        {"route names an unknown upstream", kListen + "upstreams: { chat: { servers: [127.0.0.1:9000] } }\nroutes:\n  - upstream: caht\n",
         {"4:15: unknown upstream 'caht' (did you mean 'chat'?)"}},
        {"route names an unknown upstream, far", kListen + kUpstreams + "routes:\n  - upstream: app\n  - upstream: billing\n",
         {"5:15: unknown upstream 'billing'"}},
    });
}

TEST_CASE("config errors: wrong types") {
    run({
        {"listen is a map", "listen: { address: 127.0.0.1:8080 }\n" + kUpstreams + kRoutes,
         {"1:9: expected a list for 'listen', got a map"}},
        {"listen is a scalar", "listen: 127.0.0.1:8080\n" + kUpstreams + kRoutes,
         {"1:9: expected a list for 'listen', got '127.0.0.1:8080'"}},
        {"listener is a scalar", "listen: [127.0.0.1:8080]\n" + kUpstreams + kRoutes,
         {"1:10: expected a map for 'listen', got '127.0.0.1:8080'"}},
        {"upstreams is a list", kListen + "upstreams: [app]\n" + kRoutes,
         {"2:12: expected a map for 'upstreams', got a list"}},
        {"upstream is a list", kListen + "upstreams: { app: [127.0.0.1:1] }\n" + kRoutes,
         {"2:19: expected a map for 'app', got a list"}},
        {"servers is a scalar", kListen + "upstreams: { app: { servers: 127.0.0.1:1 } }\n" + kRoutes,
         {"2:30: expected a list for 'servers', got '127.0.0.1:1'"}},
        {"routes is a map", kListen + kUpstreams + "routes: { upstream: app }\n",
         {"3:9: expected a list for 'routes', got a map"}},
        {"route upstream is a list", kListen + kUpstreams + "routes: [{ upstream: [app] }]\n",
         {"3:22: expected a value for 'upstream', got a list"}},
        {"match is a scalar", kListen + kUpstreams + "routes: [{ match: /, upstream: app }]\n",
         {"3:19: expected a map for 'match', got '/'"}},
        {"allow is a scalar", kListen + kUpstreams + "routes: [{ upstream: app, upgrade: { allow: websocket } }]\n",
         {"3:45: expected a list for 'allow', got 'websocket'"}},
        {"allow is a map", kListen + kUpstreams + "routes: [{ upstream: app, upgrade: { allow: { websocket: 1 } } }]\n",
         {"3:45: expected a list for 'allow', got a map"}},
        {"timeouts is a scalar", kBase + "timeouts: 10s\n", {"4:11: expected a map for 'timeouts', got '10s'"}},
        {"access_log is a scalar", kBase + "access_log: off\n", {"4:13: expected a map for 'access_log', got 'off'"}},
        {"access_log path is a list", kBase + "access_log: { path: [a] }\n",
         {"4:21: expected a value for 'path', got a list"}},
        {"empty value points at its key", kBase + "workers:\n", {"4:1: expected a value for 'workers', got nothing"}},
        {"empty list item points at the list", kListen + "upstreams:\n  app:\n    servers:\n      -\n" + kRoutes,
         {"5:7: expected a value for 'servers', got nothing"}},
        {"non-integer keepalive", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:9000]\n    keepalive: lots\n" + kRoutes,
         {"5:16: invalid value 'lots' for 'keepalive' (expected an integer >= 0)"}},
        {"negative keepalive", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:9000]\n    keepalive: -1\n" + kRoutes,
         {"5:16: invalid value '-1' for 'keepalive' (expected an integer >= 0)"}},
        {"huge keepalive", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:9000]\n    keepalive: 4294967296\n" + kRoutes,
         {"5:16: invalid value '4294967296' for 'keepalive' (expected an integer from 0 to 4294967295)"}},
        {"non-integer size", kBase + "limits:\n  max_header_bytes: lots\n",
         {"5:21: invalid size 'lots' (expected bytes as an integer, or a number with a unit: B, KiB, MiB, "
          "GiB, KB, MB, GB)"}},
        {"fractional size", kBase + "tunnel: { buffer: 1.5MiB }\n",
         {"4:19: invalid size '1.5MiB' (expected bytes as an integer, or a number with a unit: B, KiB, MiB, "
          "GiB, KB, MB, GB)"}},
        {"boolean", kBase + "forwarding: { via: yes }\n",
         {"4:20: invalid value 'yes' for 'via' (expected true or false)"}},
        {"require boolean", kListen + kUpstreams + "routes: [{ upstream: app, upgrade: { require: 1 } }]\n",
         {"3:47: invalid value '1' for 'require' (expected true or false)"}},
        {"require without a named protocol",
         kListen + kUpstreams + "routes: [{ upstream: app, upgrade: { allow: ['*'], require: true } }]\n",
         {"3:61: require: true needs at least one protocol named in upgrade.allow (a 426 must tell the "
          "client what to upgrade to)"}},
        {"require with an empty allow list", kListen + kUpstreams + "routes: [{ upstream: app, upgrade: { require: true } }]\n",
         {"3:47: require: true needs at least one protocol named in upgrade.allow (a 426 must tell the "
          "client what to upgrade to)"}},
    });
}

TEST_CASE("config errors: values") {
    run({
        {"duration without unit", kBase + "timeouts:\n  request_header: 10\n",
         {"5:19: invalid duration '10' (expected a number with a unit: ms, s, m, h)"}},
        {"duration with a space", kBase + "timeouts:\n  upstream_connect: 5 s\n",
         {"5:21: invalid duration '5 s' (expected a number with a unit: ms, s, m, h)"}},
        {"zero timeout", kBase + "timeouts:\n  tunnel_idle: 0s\n", {"5:16: 'tunnel_idle' must be greater than 0"}},
        {"bad listen address", "listen:\n  - address: localhost\n" + kUpstreams + kRoutes,
         {"2:14: invalid address 'localhost' (expected host:port or [v6]:port, port 0-65535)"}},
        {"bad server address", kListen + "upstreams: { app: { servers: [127.0.0.1:1, '[::1:2'] } }\n" + kRoutes,
         {"2:44: invalid address '[::1:2' (expected host:port or [v6]:port, port 0-65535)"}},
        {"port out of range", kBase + "admin: { address: 127.0.0.1:70000 }\n",
         {"4:19: invalid address '127.0.0.1:70000' (expected host:port or [v6]:port, port 0-65535)"}},
        {"duplicate listen address", "listen:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:80\n" + kUpstreams + kRoutes,
         {"3:14: duplicate listen address '127.0.0.1:80'"}},
        {"TLS", "listen:\n  - address: 127.0.0.1:8443\n    tls: { cert: a.pem, key: a.pem }\n" + kUpstreams + kRoutes,
         {"3:18: cannot read a.pem: No such file or directory"}},
        {"balance", kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:9000]\n    balance: fastest\n" + kRoutes,
         {"5:14: invalid balance 'fastest' (expected one of: round_robin, least_conn, hash)"}},
        {"on_disallowed", kListen + kUpstreams + "routes:\n  - upstream: app\n    upgrade:\n      on_disallowed: drop\n",
         {"6:22: invalid on_disallowed 'drop' (expected one of: strip, reject)"}},
        {"splice", kBase + "tunnel:\n  splice: on\n", {"5:11: invalid splice 'on' (expected one of: auto, off)"}},
        {"workers zero", kBase + "workers: 0\n",
         {"4:10: invalid value '0' for 'workers' (expected \"auto\" or an integer from 1 to 1024)"}},
        {"workers negative", kBase + "workers: -2\n",
         {"4:10: invalid value '-2' for 'workers' (expected \"auto\" or an integer from 1 to 1024)"}},
        {"workers word", kBase + "workers: all\n",
         {"4:10: invalid value 'all' for 'workers' (expected \"auto\" or an integer from 1 to 1024)"}},
        {"workers too many", kBase + "workers: 100000\n",
         {"4:10: invalid value '100000' for 'workers' (expected \"auto\" or an integer from 1 to 1024)"}},
        {"allow entries", kListen + kUpstreams + "routes:\n  - upstream: app\n    upgrade:\n      allow: [websocket, \"web socket\", \"*\", h2c, HTTP/2.0, \"a/\", \"/1\"]\n",
         {"6:26: invalid protocol 'web socket' (expected \"*\", a name like websocket, or name/version)",
          "6:60: invalid protocol 'a/' (expected \"*\", a name like websocket, or name/version)",
          "6:66: invalid protocol '/1' (expected \"*\", a name like websocket, or name/version)"}},
        {"match.upgrade is not *", kListen + kUpstreams + "routes:\n  - match: { upgrade: \"*\" }\n    upstream: app\n",
         {"4:23: invalid protocol '*' (expected a name like websocket, or name/version)"}},
        {"match.upgrade with a space", kListen + kUpstreams + "routes:\n  - match: { upgrade: web socket }\n    upstream: app\n",
         {"4:23: invalid protocol 'web socket' (expected a name like websocket, or name/version)"}},
        {"match.host with a port", kListen + kUpstreams + "routes:\n  - match: { host: chat.example.com:8080 }\n    upstream: app\n",
         {"4:20: invalid host 'chat.example.com:8080' (expected a name like example.com or a wildcard like "
          "\"*.example.com\", without a port)"}},
        {"match.host star alone", kListen + kUpstreams + "routes:\n  - match: { host: \"*\" }\n    upstream: app\n",
         {"4:20: invalid host '*' (expected a name like example.com or a wildcard like \"*.example.com\", "
          "without a port)"}},
        {"match.host inner wildcard", kListen + kUpstreams + "routes:\n  - match: { host: \"a.*.com\" }\n    upstream: app\n",
         {"4:20: invalid host 'a.*.com' (expected a name like example.com or a wildcard like \"*.example.com\", "
          "without a port)"}},
        {"path_prefix without slash", kListen + kUpstreams + "routes:\n  - match: { path_prefix: ws }\n    upstream: app\n",
         {"4:27: 'path_prefix' must start with '/', got 'ws'"}},
        {"max_connections zero", kBase + "limits:\n  max_connections: 0\n",
         {"5:20: invalid value '0' for 'max_connections' (expected an integer >= 1)"}},
        {"max_headers zero", kBase + "limits:\n  max_headers: 0\n",
         {"5:16: invalid value '0' for 'max_headers' (expected an integer >= 1)"}},
        {"max_header_bytes zero", kBase + "limits:\n  max_header_bytes: 0\n",
         {"5:21: 'max_header_bytes' must be at least 1 byte, got '0'"}},
        {"tunnel buffer too small", kBase + "tunnel:\n  buffer: 512\n",
         {"5:11: 'buffer' must be at least 1KiB, got '512'"}},
        {"tunnel buffer just enough", kBase + "tunnel:\n  buffer: 1KiB\n", {}},
        {"access_log empty path", kBase + "access_log: { path: \"\" }\n",
         {"4:21: 'path' must not be empty (use \"-\" for stdout, \"off\" to disable)"}},
        {"health values",
         kListen + "upstreams:\n  app:\n    servers: [127.0.0.1:9000]\n    health:\n      max_fails: 0\n"
                   "      cooldown: 10\n      check: { path: healthz, interval: 0s }\n" + kRoutes,
         {"6:18: invalid value '0' for 'max_fails' (expected an integer >= 1)",
          "7:17: invalid duration '10' (expected a number with a unit: ms, s, m, h)",
          "8:22: 'path' must start with '/', got 'healthz'",
          "8:41: 'interval' must be greater than 0"}},
    });
}

TEST_CASE("config errors: all are collected, in file order") {
    const std::string yaml =
        "routes:\n"                       // 1
        "  - upstream: nope\n"            // 2
        "    match: { path_prefix: x }\n"  // 3
        "timeouts: { request_header: 5 }\n"  // 4
        "upstreams:\n"                    // 5
        "  app: { servers: [], balance: rr }\n"  // 6
        "listen: [{ address: \"[::1]:80\", tls: {} }]\n"  // 7
        "workers: none\n";               // 8
    CHECK(lines(errors_of(yaml)) ==
          lines({
              "2:15: unknown upstream 'nope'",
              "3:27: 'path_prefix' must start with '/', got 'x'",
              "4:29: invalid duration '5' (expected a number with a unit: ms, s, m, h)",
              "6:19: upstream 'app' has no servers",
              "6:32: invalid balance 'rr' (expected one of: round_robin, least_conn, hash)",
              "7:38: missing required key 'cert'",
              "7:38: missing required key 'key'",
              "8:10: invalid value 'none' for 'workers' (expected \"auto\" or an integer from 1 to 1024)",
          }));
}

TEST_CASE("ConfigError::to_string") {
    struct TextCase {
        ConfigError error;
        std::string text;
    };
    const std::vector<TextCase> cases = {
        {{"a.yaml", 3, 7, "bad"}, "a.yaml:3:7: bad"},
        {{"/etc/switchyard.yaml", 1, 1, "x"}, "/etc/switchyard.yaml:1:1: x"},
        {{"a.yaml", 0, 0, "cannot read file: No such file or directory"},
         "a.yaml: cannot read file: No such file or directory"},
    };
    for (const TextCase& c : cases) {
        CAPTURE(c.text);
        CHECK(c.error.to_string() == c.text);
    }
}

TEST_CASE("load_config_file reports an unreadable file without a position") {
    const ConfigResult missing = load_config_file("/nonexistent/switchyard.yaml");
    CHECK_FALSE(missing.config.has_value());
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].line == 0);
    CHECK(missing.errors[0].to_string() ==
          "/nonexistent/switchyard.yaml: cannot read file: No such file or directory");

    const ConfigResult directory = load_config_file("/");
    REQUIRE(directory.errors.size() == 1);
    CHECK(directory.errors[0].to_string() == "/: cannot read file: Is a directory");
}

}  // namespace
}  // namespace sy
