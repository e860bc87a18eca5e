// RFC 9112 §3.2 request-targets and RFC 9110 §7.2 Host values, as tables.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "parser/request_target.hpp"

using namespace sy;

TEST_CASE("Host: uri-host [ \":\" port ]") {
    struct Case {
        std::string_view text;
        bool ok;
        std::string_view host;
        int port;  // -1: none
    };
    const std::vector<Case> cases = {
        {"example.com", true, "example.com", -1},
        {"Example.COM:8080", true, "Example.COM", 8080},
        {"127.0.0.1", true, "127.0.0.1", -1},
        {"127.0.0.1:80", true, "127.0.0.1", 80},
        {"[::1]", true, "[::1]", -1},
        {"[::1]:8443", true, "[::1]", 8443},
        {"[2001:db8::7]:1", true, "[2001:db8::7]", 1},
        {"[::ffff:192.0.2.1]", true, "[::ffff:192.0.2.1]", -1},
        {"[1:2:3:4:5:6:7:8]", true, "[1:2:3:4:5:6:7:8]", -1},
        {"a-b_c~d.e", true, "a-b_c~d.e", -1},
        {"x%41y", true, "x%41y", -1},                 // pct-encoded reg-name
        {"host:", true, "host", -1},                  // RFC 3986: port = *DIGIT
        {"host:65535", true, "host", 65535},
        {"host:0", true, "host", 0},
        {"", false, "", -1},
        {":80", false, "", -1},
        {"host:65536", false, "", -1},
        {"host:123456", false, "", -1},
        {"host:8a", false, "", -1},
        {"host:-1", false, "", -1},
        {"host:+80", false, "", -1},
        {"host:80:81", false, "", -1},
        {"user@host", false, "", -1},                 // userinfo
        {"user:pw@host", false, "", -1},
        {"ho st", false, "", -1},
        {"host/path", false, "", -1},
        {"host?q", false, "", -1},
        {"host#f", false, "", -1},
        {"ho\"st", false, "", -1},
        {"ho\xc3\xa9st", false, "", -1},             // raw UTF-8: only pct-encoded
        {"x%4", false, "", -1},
        {"x%zz", false, "", -1},
        {"::1", false, "", -1},                       // IPv6 without brackets
        {"[::1", false, "", -1},
        {"[::1]80", false, "", -1},
        {"[::g]", false, "", -1},
        {"[1:2:3:4:5:6:7:8:9]", false, "", -1},
        {"[1::2::3]", false, "", -1},
        {"[12345::1]", false, "", -1},
        {"[v1.fe]", false, "", -1},                   // IPvFuture: not served
        {"[]", false, "", -1},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const HostPort hp = parse_host_port(c.text);
        CHECK(hp.ok == c.ok);
        if (!c.ok) continue;
        CHECK(hp.host == c.host);
        CHECK(hp.has_port == (c.port >= 0));
        if (c.port >= 0) CHECK(hp.port == c.port);
    }
}

TEST_CASE("request-target forms and bytes") {
    struct Case {
        std::string_view method;
        std::string target;
        bool ok;
        TargetForm form;
        std::string_view authority;
        std::string_view forward;  // absolute-form: the origin-form sent on
    };
    const std::vector<Case> cases = {
        {"GET", "/", true, TargetForm::origin, "", ""},
        {"GET", "/a/b?c=d&e=f;g", true, TargetForm::origin, "", ""},
        {"GET", "/%7Euser/a%20b", true, TargetForm::origin, "", ""},
        {"GET", "/a:b@c!$&'()*+,;=-._~/?x/?", true, TargetForm::origin, "", ""},
        {"GET", "http://example.com/p?q", true, TargetForm::absolute, "example.com", "/p?q"},
        {"GET", "HTTP://Example.com:8080", true, TargetForm::absolute, "Example.com:8080", "/"},
        {"GET", "http://example.com?q=1", true, TargetForm::absolute, "example.com", "/?q=1"},
        {"GET", "https://[::1]:8443/x", true, TargetForm::absolute, "[::1]:8443", "/x"},
        {"OPTIONS", "*", true, TargetForm::asterisk, "", ""},
        {"CONNECT", "example.com:443", true, TargetForm::authority, "example.com:443", ""},
        // Bytes RFC 3986 does not allow.
        {"GET", "/a#frag", false, TargetForm::origin, "", ""},
        {"GET", "/a b", false, TargetForm::origin, "", ""},
        {"GET", "/a\tb", false, TargetForm::origin, "", ""},
        {"GET", std::string("/a\x01", 3), false, TargetForm::origin, "", ""},
        {"GET", "/a\x7f", false, TargetForm::origin, "", ""},
        {"GET", "/caf\xc3\xa9", false, TargetForm::origin, "", ""},
        {"GET", "/a\"b", false, TargetForm::origin, "", ""},
        {"GET", "/a<b>", false, TargetForm::origin, "", ""},
        {"GET", "/a\\b", false, TargetForm::origin, "", ""},
        {"GET", "/a{b}|c^d`e", false, TargetForm::origin, "", ""},
        {"GET", "/a[0]", false, TargetForm::origin, "", ""},
        {"GET", "/%", false, TargetForm::origin, "", ""},
        {"GET", "/%g0", false, TargetForm::origin, "", ""},
        // Forms where they do not belong.
        {"GET", "", false, TargetForm::origin, "", ""},
        {"GET", "*", false, TargetForm::origin, "", ""},
        {"GET", "example.com:443", false, TargetForm::origin, "", ""},
        {"GET", "a/b", false, TargetForm::origin, "", ""},
        {"CONNECT", "example.com", false, TargetForm::origin, "", ""},
        {"CONNECT", "/", true, TargetForm::origin, "", ""},
        // absolute-form that cannot be trusted about its host.
        {"GET", "http://user@example.com/", false, TargetForm::origin, "", ""},
        {"GET", "http://user:pw@evil@example.com/", false, TargetForm::origin, "", ""},
        {"GET", "http:///path", false, TargetForm::origin, "", ""},
        {"GET", "http://exa mple.com/", false, TargetForm::origin, "", ""},
        {"GET", "http://example.com:99999/", false, TargetForm::origin, "", ""},
        {"GET", "http://example.com/a#b", false, TargetForm::origin, "", ""},
        {"GET", "ftp://example.com/", false, TargetForm::origin, "", ""},
        {"GET", "http:/example.com/", false, TargetForm::origin, "", ""},
    };
    for (const Case& c : cases) {
        CAPTURE(c.method);
        CAPTURE(c.target);
        const RequestTarget t = parse_request_target(c.method, c.target);
        CHECK(t.ok == c.ok);
        if (!c.ok) {
            CHECK(std::string_view(t.reason) != "");
            continue;
        }
        CHECK(t.form == c.form);
        CHECK(t.authority == c.authority);
        CHECK(t.forward_target == c.forward);
    }
}
