// The ssh transport: `ssh [user@]host ckpt receive ...` run with the user's
// own OpenSSH client (keys, agent, ~/.ssh/config and known_hosts apply), its
// standard input and output carrying the migration protocol. Authentication
// and encryption are OpenSSH's. POSIX: ssh.cc (fork, pipes); Windows:
// ssh_windows.cc (CreateProcess; under Wine a loopback socket pair, so that
// a Linux ssh run natively by Wine gets real descriptors).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/stream.h"
#include "util/status.h"

namespace ckpt::net {

struct SshTarget {
  std::string user;  // "" : ssh's default
  std::string host;
  int port = 0;  // 0 : ssh's default
  std::string Url() const;
};
// ssh://[user@]host[:port] (IPv6 literals in brackets).
Result<SshTarget> ParseSshUrl(const std::string& url);

struct SshOptions {
  // The client command, split at spaces (rsync's -e): "ssh", "ssh -F FILE".
  std::string command = "ssh";
  std::vector<std::string> options;  // each passed as -o OPTION
};

// A running ssh client: a Stream to the remote command.
class SshChannel : public Stream {
 public:
  ~SshChannel() override = default;
  // Closes our side and waits for ssh to end; its exit status (255: ssh's
  // own failure, 128+N: killed by signal N; -1: unknown, when Wine ran a
  // Linux ssh, of which it gives no process handle). With `grace_ms` >= 0,
  // ssh still running after that long is ended (SIGTERM, TerminateProcess):
  // after a completed handoff, a program the target started may hold the
  // session open (Wine gives every program it starts the starter's standard
  // error, so sshd waits for the migrated program to end).
  virtual int Finish(int grace_ms) = 0;
  // True if Finish() had to end ssh.
  virtual bool EndedByUs() const = 0;
  // What ssh (and the remote command) wrote on standard error ("" where it
  // could not be captured: a Linux ssh under Wine writes to ours).
  virtual std::string ErrorText() = 0;
  // Ends the connection at once (SIGKILL to the client).
  virtual void Kill() = 0;
  virtual long Pid() const = 0;
};

// The client's argv for `remote_argv`, each word quoted for the remote shell.
Result<std::vector<std::string>> SshArgv(const SshTarget& target, const SshOptions& options,
                                         const std::vector<std::string>& remote_argv);

// Starts the client for `remote_argv`, each word quoted for the remote shell.
Result<std::unique_ptr<SshChannel>> StartSsh(const SshTarget& target, const SshOptions& options,
                                             const std::vector<std::string>& remote_argv);

// `word` quoted for a POSIX shell.
std::string ShellQuote(const std::string& word);

}  // namespace ckpt::net
