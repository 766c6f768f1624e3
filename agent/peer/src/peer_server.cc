// PeerServer implementation: an accept thread and one thread per session
// (bounded). Each session thread runs the responder handshake, then a
// request → reply loop over the PeerStore. Stop() shuts every session's
// socket down (through a dup of it kept here), which wakes the blocked reads.
#include "sparetime/peer/peer_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <list>
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
    if (Status s = MayRead(r.owner, "ask which chunks it holds"); !s.ok()) return Error(s);
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
    if (Status s = MayRead(r.owner, "get a chunk"); !s.ok()) return Error(s);
    auto sealed = store_.Get(Owner(r.owner), r.id);
    if (!sealed.ok()) return Error(sealed.status());
    return transport::ChunkReply{std::move(*sealed)};
  }
  MessageBody operator()(const transport::ReleaseChunksRequest& r) {
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
    return transport::StatsReply{usage->used(), quota, usage->chunks,
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
  // A reply sent as a request.
  template <typename Reply>
  MessageBody operator()(const Reply&) {
    return Error(Status(ErrorCode::kInvalidArgument, "a reply is not a request"));
  }

 private:
  std::string Owner(const std::string& owner) const { return owner.empty() ? self_ : owner; }
  // OK for the owner itself; otherwise what options_.may_read says (null:
  // refused). A refusal is logged once per request.
  Status MayRead(const std::string& owner, const char* what) const {
    if (owner.empty() || owner == self_) return Status::Ok();
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

}  // namespace

class PeerServer::Impl {
 public:
  Impl(const transport::Identity& identity, peerstore::PeerStore& store, KeyLookup lookup,
       PeerServerOptions options, const Clock& clock, Fd listener, uint16_t port)
      : identity_(identity),
        store_(store),
        lookup_(std::move(lookup)),
        options_(std::move(options)),
        clock_(clock),
        listener_(std::move(listener)),
        port_(port) {
    if (!options_.log) {
      options_.log = [](const std::string& line) {
        std::fprintf(stderr, "sparetimed: %s\n", line.c_str());
      };
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~Impl() { Stop(); }

  void Stop() EXCLUDES(mu_) {
    if (stopping_.exchange(true)) return;
    if (accept_thread_.joinable()) accept_thread_.join();
    // Stopped means gone: new connections are refused, not left hanging in
    // the backlog of a socket nobody accepts on.
    listener_ = Fd();
    std::list<Slot> slots;
    {
      MutexLock l(mu_);
      for (auto& s : slots_) ::shutdown(s.wake.get(), SHUT_RDWR);
      slots.splice(slots.end(), slots_);
    }
    for (auto& s : slots) s.thread.join();
  }

  uint16_t port() const { return port_; }
  uint64_t served() const { return served_.load(); }
  uint64_t refused() const { return refused_.load(); }
  uint64_t puts() const { return puts_.load(); }

 private:
  struct Slot {
    Fd wake;  // a dup of the session socket, to shut it down from Stop()
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop() EXCLUDES(mu_) {
    while (!stopping_.load()) {
      Result<Fd> conn = transport::AcceptTcp(listener_, std::chrono::milliseconds(200));
      if (!conn.ok()) continue;  // timeout, or a connection that died at once
      ReapFinished();
      MutexLock l(mu_);
      if (slots_.size() >= options_.max_sessions) {
        options_.log("refusing a connection from " + transport::PeerAddress(conn->get()) + ": " +
                     std::to_string(options_.max_sessions) + " sessions already running");
        ++refused_;
        continue;  // closes it
      }
      Slot& slot = slots_.emplace_back();
      slot.wake = Fd(::fcntl(conn->get(), F_DUPFD_CLOEXEC, 0));
      slot.thread = std::thread([this, &slot, fd = std::move(*conn)]() mutable {
        Serve(std::move(fd));
        slot.done.store(true);
      });
    }
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

  void Serve(Fd fd) {
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
      ++refused_;
      if (!stopping_.load()) options_.log("session from " + address + " refused: " +
                                          session.status().message());
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
  PeerServerOptions options_;
  const Clock& clock_;
  Fd listener_;
  uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> served_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> puts_{0};
  Mutex mu_;
  std::list<Slot> slots_ GUARDED_BY(mu_);
  std::thread accept_thread_;
};

PeerServer::PeerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerServer::~PeerServer() { Stop(); }

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
void PeerServer::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace sparetime::peer
