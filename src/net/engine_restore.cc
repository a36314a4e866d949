#include "net/engine_restore.h"

#include "engine/engine.h"

namespace ckpt::net {

ProcessRestorer EngineRestorer() {
  return [](const std::string& dir, const nlohmann::json& hello,
            const std::function<Status(std::int64_t)>& hold) -> Result<nlohmann::json> {
    engine::RestoreOptions r;
    r.dir = dir;
    r.detach = true;
    r.ipc_ns = engine::IpcNsMode::kAuto;
    r.new_pidns = hello.value("pidns", false);
    r.hold = [&hold](const engine::RestoreStats& s) { return hold(s.pid); };
    ASSIGN_OR_RETURN(auto st, engine::Restore(r));
    return nlohmann::json{{"pid", st.pid}, {"members", st.members}, {"new_ipc_ns", st.new_ipc_ns}};
  };
}

}  // namespace ckpt::net
