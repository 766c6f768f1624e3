// PeerServer implementation: an accept thread and one thread per connection
// (bounded: pending handshakes and authenticated sessions have separate
// budgets, see peer_server.h). Each thread runs the responder handshake,
// then a request → reply loop over the PeerStore. Stop() and eviction shut a
// connection's socket down (through a dup of it kept here), which wakes the
// blocked reads; the dup is closed when the thread ends.
#include "sparetime/peer/peer_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <list>
#include <map>
#include <thread>

#include "sparetime/base/mutex.h"
#include "sparetime/transport/messages.h"
#include "sparetime/transport/net.h"
#include "sparetime/transport/session.h"

namespace sparetime::peer {
namespace {

using transport::Message;
using transport::MessageBody;

// Handles one request for the session's owner `self` (the authenticated
// agent name). Never fails as a whole: errors become ErrorReply.
class RequestHandler {
 public:
  RequestHandler(peerstore::PeerStore& store, std::string self, MigrationHandler* migration,
                 std::atomic<uint64_t>& puts, const PeerServerOptions& options)
      : store_(store), self_(std::move(self)), migration_(migration), puts_(puts),
        options_(options) {}

  MessageBody operator()(const transport::HasChunksRequest& r) {
    if (Status s = MayRead(r.owner, "ask which chunks it holds", /*caretaker=*/true); !s.ok()) {
      return Error(s);
    }
    auto present = store_.Has(Owner(r.owner), r.ids);
    if (!present.ok()) return Error(present.status());
    return transport::HasChunksReply{std::move(*present)};
  }
  MessageBody operator()(const transport::PutChunksRequest& r) {
    transport::PutChunksReply reply;
    for (const auto& item : r.chunks) {
      auto put = store_.Put(self_, item.id, item.sealed, HashBlob(item.sealed));
      reply.results.push_back(put.ok() ? Status::Ok() : put.status());
    }
    // Durable before we say so.
    ++puts_;
    if (Status s = store_.Flush(self_); !s.ok()) return Error(s);
    return reply;
  }
  MessageBody operator()(const transport::GetChunkRequest& r) {
    if (Status s = MayRead(r.owner, "get a chunk", /*caretaker=*/true); !s.ok()) return Error(s);
    auto sealed = store_.Get(Owner(r.owner), r.id);
    if (!sealed.ok()) return Error(sealed.status());
    return transport::ChunkReply{std::move(*sealed)};
  }
  MessageBody operator()(const transport::ReleaseChunksRequest& r) {
    // A mount of this owner's snapshot elsewhere holds every release back.
    if (options_.holds != nullptr) {
      if (Status held = options_.holds->CheckRelease(self_); !held.ok()) return Error(held);
    }
    auto released = store_.Release(self_, r.ids);
    if (!released.ok()) return Error(released.status());
    return transport::ReleaseChunksReply{static_cast<uint32_t>(*released)};
  }
  MessageBody operator()(const transport::PutRootsRequest& r) {
    Status s = store_.PutRoots(self_, r.generation, r.roots);
    if (!s.ok()) return Error(s);
    return transport::OkReply{};
  }
  MessageBody operator()(const transport::GetRootsRequest& r) {
    if (Status s = MayRead(r.owner, "get the snapshot list"); !s.ok()) return Error(s);
    auto roots = store_.GetRoots(Owner(r.owner));
    if (!roots.ok()) return Error(roots.status());
    return transport::RootsReply{roots->generation, std::move(roots->data)};
  }
  MessageBody operator()(const transport::PutWrappedKeyRequest& r) {
    Status s = store_.PutKey(self_, r.wrapped_key);
    if (!s.ok()) return Error(s);
    return transport::OkReply{};
  }
  MessageBody operator()(const transport::GetWrappedKeyRequest& r) {
    if (Status s = MayRead(r.owner, "get the wrapped key"); !s.ok()) return Error(s);
    auto key = store_.GetKey(Owner(r.owner));
    if (!key.ok()) return Error(key.status());
    return transport::WrappedKeyReply{std::move(*key)};
  }
  MessageBody operator()(const transport::GetStatsRequest&) {
    auto usage = store_.Usage(self_);
    if (!usage.ok()) return Error(usage.status());
    const auto& limits = store_.limits();
    uint64_t quota = limits.owner_quota ? limits.owner_quota : limits.capacity;
    uint64_t used_total = store_.TotalUsed();
    // What the owner still has here: released chunks wait out their grace
    // on this peer's disk (and quota) but are no longer the owner's
    // (docs/peers.md "Lifecycle"); a prune measures its release by this.
    return transport::StatsReply{usage->used() - usage->released_bytes, quota,
                                 usage->chunks - usage->released_chunks,
                                 limits.capacity > used_total ? limits.capacity - used_total : 0};
  }
  MessageBody operator()(const transport::MigrateHasChunksRequest& r) {
    if (!migration_) return NoMigration();
    auto present = migration_->Has(self_, r.ids);
    if (!present.ok()) return Error(present.status());
    return transport::HasChunksReply{std::move(*present)};
  }
  MessageBody operator()(const transport::MigratePutChunksRequest& r) {
    if (!migration_) return NoMigration();
    auto results = migration_->Put(self_, r.chunks);
    if (!results.ok()) return Error(results.status());
    return transport::PutChunksReply{std::move(*results)};
  }
  MessageBody operator()(const transport::MigrateRestoreRequest& r) {
    if (!migration_) return NoMigration();
    auto reply = migration_->Restore(self_, r);
    if (!reply.ok()) return Error(reply.status());
    return *reply;
  }
  MessageBody operator()(const transport::MigrateCheckRequest& r) {
    if (!migration_) return NoMigration();
    if (Status s = migration_->Check(self_, r); !s.ok()) return Error(s);
    return transport::OkReply{};
  }
  MessageBody operator()(const transport::HoldSnapshotRequest& r) {
    if (Status s = MayRead(r.owner, "hold a snapshot"); !s.ok()) return Error(s);
    if (options_.holds == nullptr) {
      return Error(FailedPrecondition("this peer keeps no read holds"));
    }
    if (Status s = options_.holds->Hold(Owner(r.owner), self_, r.snapshot, r.seconds); !s.ok()) {
      return Error(s);
    }
    return transport::OkReply{};
  }
  MessageBody operator()(const transport::ListChunksRequest& r) {
    if (Status s = MayRead(r.owner, "list the chunks", /*caretaker=*/true); !s.ok()) return Error(s);
    auto chunks = store_.ListChunks(Owner(r.owner));
    if (!chunks.ok()) return Error(chunks.status());
    transport::ChunkListReply reply;
    for (const StoredChunk& c : *chunks) {
      if (!r.from_start && !(r.after.bytes < c.id.bytes)) continue;
      if (reply.ids.size() == transport::kMaxIdsPerBatch) break;
      reply.ids.push_back(c.id);
    }
    return reply;
  }
  MessageBody operator()(const transport::CaretakerPutChunksRequest& r) {
    const std::string owner = Owner(r.owner);
    if (owner != self_) {
      Status s = options_.may_care_for
                     ? options_.may_care_for(self_, owner)
                     : PermissionDenied("this peer accepts no caretaker for " + owner);
      if (!s.ok()) {
        options_.log("refused: " + self_ + " tried to store chunks for " + owner + ": " + s.message());
        return Error(s);
      }
    }
    transport::PutChunksReply reply;
    uint64_t stored = 0, bytes = 0;
    for (const auto& item : r.chunks) {
      auto put = store_.Put(owner, item.id, item.sealed, HashBlob(item.sealed));
      reply.results.push_back(put.ok() ? Status::Ok() : put.status());
      if (put.ok() && !*put) {
        ++stored;
        bytes += item.sealed.size();
      }
    }
    ++puts_;
    if (Status s = store_.Flush(owner); !s.ok()) return Error(s);
    if (owner != self_ && stored > 0) {
      options_.log("caretaker " + self_ + " stored " + std::to_string(stored) + " chunk(s) (" +
                   std::to_string(bytes) + " bytes) for " + owner);
    }
    return reply;
  }
  // A reply sent as a request.
  template <typename Reply>
  MessageBody operator()(const Reply&) {
    return Error(Status(ErrorCode::kInvalidArgument, "a reply is not a request"));
  }

 private:
  std::string Owner(const std::string& owner) const { return owner.empty() ? self_ : owner; }
  // OK for the owner itself; otherwise what options_.may_read says (null:
  // refused). A refusal is logged once per request.
  // With `caretaker`, the owner's caretaker may too (chunk reads only).
  Status MayRead(const std::string& owner, const char* what, bool caretaker = false) const {
    if (owner.empty() || owner == self_) return Status::Ok();
    if (caretaker && options_.may_care_for && options_.may_care_for(self_, owner).ok()) {
      return Status::Ok();
    }
    Status s = options_.may_read
                   ? options_.may_read(self_, owner)
                   : PermissionDenied("agent " + self_ + " may not read the backups of " + owner +
                                      " on this peer");
    if (!s.ok()) options_.log("refused: " + self_ + " tried to " + what + " of " + owner + ": " +
                              s.message());
    return s;
  }
  static MessageBody Error(const Status& s) { return transport::ErrorReply{s}; }
  static MessageBody NoMigration() {
    return Error(Status(ErrorCode::kFailedPrecondition, "this agent does not accept process migrations"));
  }

  peerstore::PeerStore& store_;
  std::string self_;
  MigrationHandler* migration_;
  std::atomic<uint64_t>& puts_;
  const PeerServerOptions& options_;
};

// Refusals of strangers, rate-limited: the first of a quiet interval is
// logged at once with its detail; the others are counted and summarised in
// one line when the interval ends (Flush, called from the accept loop).
class RefusalLog {
 public:
  enum Reason { kPerAddress, kEvicted, kHandshake, kSessionsFull, kReasons };

  RefusalLog(const Clock& clock, std::chrono::milliseconds interval,
             std::function<void(const std::string&)> log)
      : clock_(clock), interval_(interval), log_(std::move(log)) {}

  void Note(Reason reason, const std::string& host, const std::string& detail) EXCLUDES(mu_) {
    std::string line;
    {
      MutexLock l(mu_);
      auto now = clock_.MonoNow();
      if (!open_) {
        open_ = true;
        since_ = now;
        line = detail;  // the first of the interval: said at once
      } else {
        ++counts_[reason];
        ++by_host_[host];
        last_[reason] = detail;
      }
    }
    if (!line.empty()) log_(line + " (further refusals in the next " + Seconds() + " are summarised)");
  }

  // Ends the interval when it is over (force: now), logging its summary.
  void Flush(bool force) EXCLUDES(mu_) {
    std::string line;
    {
      MutexLock l(mu_);
      if (!open_ || (!force && clock_.MonoNow() - since_ < interval_)) return;
      open_ = false;
      uint64_t total = 0;
      for (uint64_t c : counts_) total += c;
      if (total == 0) return;
      static const char* const kWhat[kReasons] = {
          "over the per-address limit of pending handshakes", "evicted (all pending slots taken)",
          "handshake failed or timed out", "authenticated but every session slot taken"};
      line = "refused " + std::to_string(total) + " more connection" + (total == 1 ? "" : "s") +
             " in the last " + Seconds() + ":";
      const char* sep = " ";
      for (int r = 0; r < kReasons; ++r) {
        if (counts_[r] == 0) continue;
        line += sep + std::to_string(counts_[r]) + " " + kWhat[r] + " (last: " + last_[r] + ")";
        sep = "; ";
      }
      std::vector<std::pair<uint64_t, std::string>> hosts;
      for (const auto& [h, n] : by_host_) hosts.emplace_back(n, h);
      std::sort(hosts.rbegin(), hosts.rend());
      line += "; from";
      for (size_t i = 0; i < hosts.size() && i < 3; ++i) {
        line += (i ? ", " : " ") + hosts[i].second + " (" + std::to_string(hosts[i].first) + ")";
      }
      if (hosts.size() > 3) line += " and " + std::to_string(hosts.size() - 3) + " more addresses";
      counts_.fill(0);
      by_host_.clear();
    }
    log_(line);
  }

 private:
  std::string Seconds() const {
    int64_t ms = interval_.count();
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    char text[32];
    std::snprintf(text, sizeof text, "%.3g s", static_cast<double>(ms) / 1000);
    return text;
  }

  const Clock& clock_;
  const std::chrono::milliseconds interval_;
  const std::function<void(const std::string&)> log_;
  Mutex mu_;
  bool open_ GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point since_ GUARDED_BY(mu_);
  std::array<uint64_t, kReasons> counts_ GUARDED_BY(mu_){};
  std::array<std::string, kReasons> last_ GUARDED_BY(mu_);
  std::map<std::string, uint64_t> by_host_ GUARDED_BY(mu_);
};

// The source address of a connection without its port.
std::string HostOf(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

class PeerServer::Impl {
 public:
  Impl(const transport::Identity& identity, peerstore::PeerStore& store, KeyLookup lookup,
       PeerServerOptions options, const Clock& clock, Fd listener, uint16_t port)
      : identity_(identity),
        store_(store),
        lookup_(std::move(lookup)),
        options_(WithLog(std::move(options))),
        clock_(clock),
        refusals_(clock, options_.refusal_log_interval, options_.log),
        listener_(std::move(listener)),
        port_(port) {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~Impl() { Stop(/*flush_log=*/false); }

  // flush_log: write the last refusal summary (not from the destructor: the
  // log callback may capture what its owner destroyed first).
  void Stop(bool flush_log) EXCLUDES(mu_) {
    if (stopping_.exchange(true)) return;
    if (accept_thread_.joinable()) accept_thread_.join();
    // Stopped means gone: new connections are refused, not left hanging in
    // the backlog of a socket nobody accepts on.
    listener_ = Fd();
    std::list<Slot> slots;
    {
      MutexLock l(mu_);
      for (auto& s : slots_) {
        if (s.wake.valid()) ::shutdown(s.wake.get(), SHUT_RDWR);
      }
      slots.splice(slots.end(), slots_);
    }
    for (auto& s : slots) s.thread.join();
    if (flush_log) refusals_.Flush(/*force=*/true);
  }

  uint16_t port() const { return port_; }
  uint64_t served() const { return served_.load(); }
  uint64_t refused() const { return refused_.load(); }
  uint64_t puts() const { return puts_.load(); }
  size_t pending() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return pending_total_;
  }
  size_t sessions() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return sessions_;
  }

 private:
  enum class State { kPending, kEvicted, kSession, kEnded };
  struct Slot {
    Fd wake;  // a dup of the socket, to shut it down (Stop, eviction); closed when it ends
    std::string host;
    State state = State::kPending;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  static PeerServerOptions WithLog(PeerServerOptions o) {
    if (!o.log) {
      o.log = [](const std::string& line) { std::fprintf(stderr, "sparetimed: %s\n", line.c_str()); };
    }
    return o;
  }

  void AcceptLoop() EXCLUDES(mu_) {
    while (!stopping_.load()) {
      refusals_.Flush(/*force=*/false);
      Result<Fd> conn = transport::AcceptTcp(listener_, std::chrono::milliseconds(200));
      if (!conn.ok()) continue;  // timeout, or a connection that died at once
      ReapFinished();
      const std::string address = transport::PeerAddress(conn->get());
      const std::string host = HostOf(address);
      MutexLock l(mu_);
      if (pending_by_host_[host] >= options_.max_pending_per_address) {
        ++refused_;
        refusals_.Note(RefusalLog::kPerAddress, host,
                       "refusing a connection from " + address + ": " +
                           std::to_string(options_.max_pending_per_address) +
                           " handshakes from that address already pending");
        continue;  // closes it
      }
      if (pending_total_ >= options_.max_pending && !EvictOne(address)) {
        ++refused_;
        refusals_.Note(RefusalLog::kEvicted, host,
                       "refusing a connection from " + address + ": " +
                           std::to_string(options_.max_pending) + " handshakes already pending");
        continue;
      }
      Slot& slot = slots_.emplace_back();
      slot.wake = Fd(::fcntl(conn->get(), F_DUPFD_CLOEXEC, 0));
      slot.host = host;
      ++pending_total_;
      ++pending_by_host_[host];
      slot.thread = std::thread([this, &slot, fd = std::move(*conn)]() mutable {
        Serve(slot, std::move(fd));
        Leave(slot);
        slot.done.store(true);
      });
    }
  }

  // Makes room for one pending connection: shuts down the oldest pending
  // one among the addresses with the most. False when evicted handshakes still
  // unwinding already number max_pending (the thread bound).
  bool EvictOne(const std::string& by) REQUIRES(mu_) {
    if (evicted_ >= options_.max_pending) return false;
    size_t most = 0;
    for (const auto& [h, n] : pending_by_host_) most = std::max(most, n);
    for (Slot& s : slots_) {  // oldest first
      if (s.state != State::kPending || pending_by_host_[s.host] != most) continue;
      ::shutdown(s.wake.get(), SHUT_RDWR);
      s.state = State::kEvicted;
      LeavePending(s.host);
      ++evicted_;
      ++refused_;
      refusals_.Note(RefusalLog::kEvicted, s.host,
                     "dropped a pending handshake from " + s.host + " to make room for " + by + ": " +
                         std::to_string(options_.max_pending) + " handshakes were pending");
      return true;
    }
    return false;
  }

  void LeavePending(const std::string& host) REQUIRES(mu_) {
    --pending_total_;
    if (--pending_by_host_[host] == 0) pending_by_host_.erase(host);
  }

  // The handshake authenticated the peer: it takes a session slot, or is
  // refused when there is none. False: refused (or evicted meanwhile).
  bool Promote(Slot& slot) EXCLUDES(mu_) {
    MutexLock l(mu_);
    if (slot.state != State::kPending) return false;
    LeavePending(slot.host);
    if (sessions_ >= options_.max_sessions) {
      slot.state = State::kEnded;
      return false;
    }
    slot.state = State::kSession;
    ++sessions_;
    return true;
  }

  bool Evicted(const Slot& slot) const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return slot.state == State::kEvicted;
  }

  // The connection's thread ends: give back its slot and close the dup, so
  // the socket is closed now, not at the next accept.
  void Leave(Slot& slot) EXCLUDES(mu_) {
    MutexLock l(mu_);
    switch (slot.state) {
      case State::kPending: LeavePending(slot.host); break;
      case State::kEvicted: --evicted_; break;
      case State::kSession: --sessions_; break;
      case State::kEnded: break;
    }
    slot.state = State::kEnded;
    slot.wake = Fd();
  }

  void ReapFinished() EXCLUDES(mu_) {
    MutexLock l(mu_);
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (it->done.load()) {
        it->thread.join();
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Serve(Slot& slot, Fd fd) {
    std::string address = transport::PeerAddress(fd.get());
    std::string owner;
    transport::SessionOptions so;
    so.clock = &clock_;
    so.handshake_timeout = options_.handshake_timeout;
    so.io_timeout = options_.io_timeout;
    so.peer_name = address;
    auto authorize = [&](const transport::PublicKey& key) -> Status {
      Result<std::string> name = lookup_(key);
      if (!name.ok()) return name.status();
      owner = *name;
      return Status::Ok();
    };
    Result<transport::Session> session =
        transport::Session::Accept(std::move(fd), identity_, authorize, so);
    if (!session.ok()) {
      if (Evicted(slot)) return;  // counted and noted when it was evicted
      ++refused_;
      if (!stopping_.load()) {
        refusals_.Note(RefusalLog::kHandshake, slot.host,
                       "session from " + address + " refused: " + session.status().message());
      }
      return;
    }
    if (!Promote(slot)) {
      ++refused_;
      if (!stopping_.load()) {
        refusals_.Note(RefusalLog::kSessionsFull, slot.host,
                       "session with " + owner + " (" + address + ") refused: " +
                           std::to_string(options_.max_sessions) + " sessions already running");
      }
      return;
    }
    ++served_;
    RequestHandler handler(store_, owner, options_.migration, puts_, options_);
    while (!stopping_.load()) {
      auto bytes = session->Receive(options_.idle_timeout);
      if (!bytes.ok()) {
        if (!stopping_.load() && bytes.status().code() != ErrorCode::kUnavailable) {
          options_.log("session with " + owner + " (" + address + ") ended: " +
                       bytes.status().message());
        }
        return;
      }
      if (!*bytes) break;  // the peer closed cleanly
      Result<Message> request = transport::DecodeMessage(**bytes);
      transport::WipeSecrets(**bytes);  // a MigrateRestore key now lives only in `request`
      if (!request.ok()) {
        options_.log("session with " + owner + " (" + address + ") ended: " +
                     request.status().message());
        return;
      }
      Message reply{request->request_id, std::visit(handler, request->body)};
      Result<std::vector<std::byte>> encoded = transport::EncodeMessage(reply);
      if (!encoded.ok()) {
        encoded = transport::EncodeMessage(
            Message{request->request_id, transport::ErrorReply{encoded.status()}});
      }
      if (!encoded.ok() || !session->Send(*encoded).ok()) return;
    }
    session->Close().IgnoreError();
  }

  const transport::Identity& identity_;
  peerstore::PeerStore& store_;
  KeyLookup lookup_;
  const PeerServerOptions options_;
  const Clock& clock_;
  RefusalLog refusals_;
  Fd listener_;
  uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> served_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> puts_{0};
  mutable Mutex mu_;
  std::list<Slot> slots_ GUARDED_BY(mu_);  // in accept order
  size_t pending_total_ GUARDED_BY(mu_) = 0;
  std::map<std::string, size_t> pending_by_host_ GUARDED_BY(mu_);
  size_t evicted_ GUARDED_BY(mu_) = 0;  // evicted handshakes still unwinding
  size_t sessions_ GUARDED_BY(mu_) = 0;
  std::thread accept_thread_;
};

PeerServer::PeerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerServer::~PeerServer() {
  if (impl_) impl_->Stop(/*flush_log=*/false);
}

Result<std::unique_ptr<PeerServer>> PeerServer::Start(const transport::Identity& identity,
                                                      peerstore::PeerStore& store, KeyLookup lookup,
                                                      PeerServerOptions options,
                                                      const Clock& clock) {
  ST_ASSIGN_OR_RETURN(Fd listener, transport::ListenTcp(options.listen_address, options.port));
  ST_ASSIGN_OR_RETURN(uint16_t port, transport::LocalPort(listener));
  return std::unique_ptr<PeerServer>(new PeerServer(std::make_unique<Impl>(
      identity, store, std::move(lookup), std::move(options), clock, std::move(listener), port)));
}

uint16_t PeerServer::port() const { return impl_->port(); }
uint64_t PeerServer::sessions_served() const { return impl_->served(); }
uint64_t PeerServer::sessions_refused() const { return impl_->refused(); }
uint64_t PeerServer::put_requests() const { return impl_->puts(); }
size_t PeerServer::pending_connections() const { return impl_->pending(); }
size_t PeerServer::open_sessions() const { return impl_->sessions(); }
void PeerServer::Stop() {
  if (impl_) impl_->Stop(/*flush_log=*/true);
}

}  // namespace sparetime::peer
