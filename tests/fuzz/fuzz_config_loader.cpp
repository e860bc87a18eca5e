// libFuzzer target: the YAML configuration loader. Any text gives either a Config and no
// errors, or no Config and at least one error that says where (FILE:LINE:COL, 1-based)
// and what; never a crash, a hang or an exception escaping.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "routing/config_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(bytes), size);
    const sy::ConfigResult r = sy::load_config_string(text, "fuzz.yaml");
    if (r.config.has_value() == !r.errors.empty()) std::abort();
    for (const sy::ConfigError& e : r.errors) {
        if (e.file != "fuzz.yaml" || e.message.empty() || e.line < 0 || e.column < 0) std::abort();
        if (e.line > 0 && e.column == 0) std::abort();
    }
    return 0;
}
