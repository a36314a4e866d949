#include "group/protocol.h"

#include <chrono>

#include "util/bytes.h"

namespace ckpt::group {

Status Channel::Send(Msg type, std::string_view payload) {
  std::string hdr;
  PutU32(&hdr, static_cast<std::uint32_t>(type));
  PutU32(&hdr, static_cast<std::uint32_t>(payload.size()));
  std::lock_guard<std::mutex> lk(send_mu_);
  RETURN_IF_ERROR(sock_->SendAll(hdr.data(), hdr.size()));
  if (!payload.empty()) RETURN_IF_ERROR(sock_->SendAll(payload.data(), payload.size()));
  return Status::Ok();
}

Result<Message> Channel::Recv(int wait_ms, std::uint32_t max_payload, int frame_ms) {
  RETURN_IF_ERROR(sock_->WaitReadable(wait_ms));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(frame_ms);
  auto left = [&] {
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return ms.count() < 0 ? 0 : static_cast<int>(ms.count());
  };
  unsigned char hdr[8];
  RETURN_IF_ERROR(sock_->RecvAll(hdr, sizeof hdr, left()));
  Message m;
  m.type = static_cast<Msg>(DecodeU32(hdr));
  std::uint32_t len = DecodeU32(hdr + 4);
  if (len > max_payload) return Corruption("group message of " + std::to_string(len) + " bytes is too large");
  m.payload.resize(len);
  if (len > 0) RETURN_IF_ERROR(sock_->RecvAll(m.payload.data(), len, left()));
  return m;
}

namespace {
Status Malformed(const char* what) {
  return Corruption(std::string("malformed group message: ") + what);
}
}  // namespace

std::string EncodeAuth(const Auth& a) {
  std::string o;
  PutVarint(&o, a.version);
  PutString(&o, a.secret);
  return o;
}

Status DecodeAuth(std::string_view d, Auth* a) {
  ByteReader br(d);
  a->version = static_cast<std::uint32_t>(br.Varint());
  a->secret = br.String();
  return br.ok() && br.empty() ? Status::Ok() : Malformed("auth");
}

std::string EncodeHello(const Hello& h) {
  std::string o;
  PutVarint(&o, h.rank);
  PutU64(&o, static_cast<std::uint64_t>(h.pid));
  PutString(&o, h.group_id);
  PutString(&o, h.platform);
  PutString(&o, h.program);
  PutVarint(&o, h.args.size());
  for (const auto& a : h.args) PutString(&o, a);
  return o;
}

Status DecodeHello(std::string_view d, Hello* h) {
  ByteReader br(d);
  h->rank = static_cast<std::uint32_t>(br.Varint());
  h->pid = static_cast<std::int64_t>(br.U64());
  h->group_id = br.String();
  h->platform = br.String();
  h->program = br.String();
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > d.size()) return Malformed("hello");
  h->args.clear();
  for (std::uint64_t i = 0; i < n; ++i) h->args.emplace_back(br.String());
  return br.ok() ? Status::Ok() : Malformed("hello");
}

std::string EncodeReady(const Ready& r) {
  std::string o;
  PutVarint(&o, r.epoch);
  PutString(&o, r.pending_wait);
  PutVarint(&o, r.segments.size());
  for (const auto& s : r.segments) PutString(&o, s);
  return o;
}

Status DecodeReady(std::string_view d, Ready* r) {
  ByteReader br(d);
  r->epoch = br.Varint();
  r->pending_wait = br.String();
  std::uint64_t n = br.Varint();
  if (!br.ok() || n > d.size()) return Malformed("ready");
  r->segments.clear();
  for (std::uint64_t i = 0; i < n; ++i) r->segments.emplace_back(br.String());
  return br.ok() ? Status::Ok() : Malformed("ready");
}

std::string EncodeRequest(const Request& r) {
  std::string o;
  PutVarint(&o, r.epoch);
  o.push_back(static_cast<char>(r.part));
  PutString(&o, r.name);
  PutVarint(&o, r.seq);
  return o;
}

Status DecodeRequest(std::string_view d, Request* r) {
  ByteReader br(d);
  r->epoch = br.Varint();
  r->part = static_cast<Part>(br.U8());
  r->name = br.String();
  r->seq = br.Varint();
  return br.ok() ? Status::Ok() : Malformed("request");
}

std::string EncodeNote(const Note& n) {
  std::string o;
  PutVarint(&o, n.epoch);
  o.push_back(static_cast<char>(n.flag));
  PutString(&o, n.text);
  return o;
}

Status DecodeNote(std::string_view d, Note* n) {
  ByteReader br(d);
  n->epoch = br.Varint();
  n->flag = br.U8();
  n->text = br.String();
  return br.ok() ? Status::Ok() : Malformed("note");
}

Status ChannelSink::Append(const void* data, std::size_t size) {
  if (!sticky_.ok()) return sticky_;
  const char* p = static_cast<const char*>(data);
  pos_ += size;
  while (size > 0) {
    std::size_t take = std::min(size, kDataChunk - buf_.size());
    buf_.append(p, take);
    p += take;
    size -= take;
    if (buf_.size() == kDataChunk) {
      sticky_ = ch_->Send(Msg::kData, buf_);
      buf_.clear();
      if (!sticky_.ok()) return sticky_;
    }
  }
  return Status::Ok();
}

Status ChannelSink::Finish(const Status& result) {
  if (sticky_.ok() && !buf_.empty()) sticky_ = ch_->Send(Msg::kData, buf_);
  buf_.clear();
  if (!sticky_.ok()) return sticky_;
  Note n;
  n.flag = result.ok() ? 1 : 0;
  n.text = result.message();
  return ch_->Send(Msg::kEnd, EncodeNote(n));
}

}  // namespace ckpt::group
