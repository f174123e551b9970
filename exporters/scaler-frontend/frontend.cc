// llmobs-scaler-frontend: KEDA's ExternalScaler, answered natively from the table llmobs writes.
//
// Why this exists: KEDA calls GetMetricSpec, GetMetrics and IsActive for every trigger at every polling
// interval and HPA sync. Python's gRPC stack costs ~0.2 ms of CPU per call before any llmobs code runs, so at
// 32 concurrent calls on one connection its p99 is ~10x the 2 ms budget (benchmarks/scaler.py). This process
// owns the port KEDA dials and answers those three calls from an answer table that the Python scaler
// recomputes at every cache publish (answers.proto). Everything else — a trigger not in the table yet, an
// answer past its validity, the streams, a metricName that does not match — is forwarded unchanged to the
// Python scaler on a local socket, so there is one implementation of the semantics (metadata parsing,
// NOT_FOUND, staleness): Python's. This file only copies answers Python computed.
//
// Usage: llmobs-scaler-frontend --listen HOST:PORT --backend unix:PATH --table PATH --stats PATH
//                               [--tls-cert PEM --tls-key PEM [--client-ca PEM]]
// Prints "listening <port>" on stdout once bound (port 0 picks one).

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "answers.pb.h"
#include "externalscaler.grpc.pb.h"

namespace {

using externalscaler::ExternalScaler;
using externalscaler::GetMetricSpecResponse;
using externalscaler::GetMetricsRequest;
using externalscaler::GetMetricsResponse;
using externalscaler::IsActiveResponse;
using externalscaler::ScaledObjectRef;
using Metadata = google::protobuf::Map<std::string, std::string>;

const char kServiceName[] = "externalscaler.ExternalScaler";

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Must match llmobs.serving.scaler.frontend.canonical_key (Python sorts str keys by code point, which for
// UTF-8 is byte order).
std::string CanonicalKey(const Metadata& metadata) {
  std::vector<std::pair<const std::string*, const std::string*>> pairs;
  pairs.reserve(metadata.size());
  for (const auto& kv : metadata) pairs.emplace_back(&kv.first, &kv.second);
  std::sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  std::string key;
  for (const auto& [k, v] : pairs) {
    key.append(*k).push_back('\0');
    key.append(*v).push_back('\0');
  }
  return key;
}

// KEDA names metrics `s<index>-<name>` towards the HPA (llmobs.serving.scaler.metadata.strip_index_prefix).
std::string StripIndexPrefix(const std::string& name) {
  if (name.size() < 3 || name[0] != 's') return name;
  size_t i = 1;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i > 1 && i + 1 < name.size() && name[i] == '-') return name.substr(i + 1);
  return name;
}

struct Table {
  std::unordered_map<std::string, llmobs::scaler::frontend::Answer> answers;
  double trusted_until = 0;  // written_at + max_age
  bool serving = false;
  std::string version = "0";  // the scaler cache version, for the llmobs-snapshot-version trailer
};

// Requests answered here, by method and status; forwarded ones are counted by the Python scaler.
class Stats {
 public:
  enum Method { kIsActive, kGetMetricSpec, kGetMetrics, kMethods };
  static constexpr std::array<const char*, kMethods> kNames = {"IsActive", "GetMetricSpec", "GetMetrics"};

  void Count(Method method, int code) {
    if (code < 0 || code >= kCodes) code = grpc::StatusCode::UNKNOWN;
    counts_[method][code].fetch_add(1, std::memory_order_relaxed);
  }

  // Written atomically (temp file + rename) so the Python collector never reads half a file.
  void Write(const std::string& path) const {
    static const std::map<int, const char*> code_names = {
        {0, "OK"}, {3, "INVALID_ARGUMENT"}, {5, "NOT_FOUND"}, {14, "UNAVAILABLE"}, {2, "UNKNOWN"}};
    std::ostringstream out;
    for (int m = 0; m < kMethods; ++m)
      for (int c = 0; c < kCodes; ++c) {
        uint64_t n = counts_[m][c].load(std::memory_order_relaxed);
        if (n == 0) continue;
        auto name = code_names.find(c);
        out << kNames[m] << '\t' << (name == code_names.end() ? std::to_string(c) : name->second) << '\t' << n
            << '\n';
      }
    std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << out.str();
    }
    std::rename(tmp.c_str(), path.c_str());
  }

 private:
  static constexpr int kCodes = 17;
  std::atomic<uint64_t> counts_[kMethods][kCodes] = {};
};

class TableHolder {
 public:
  std::shared_ptr<const Table> Get() const { return std::atomic_load(&table_); }
  void Set(std::shared_ptr<const Table> t) { std::atomic_store(&table_, std::move(t)); }

 private:
  std::shared_ptr<const Table> table_ = std::make_shared<Table>();
};

// Forwards one server-streaming call to the backend and relays every message; ends with the backend's status.
template <class Response>
class StreamBridge : public grpc::ServerWriteReactor<Response>, public grpc::ClientReadReactor<Response> {
 public:
  using Starter = std::function<void(grpc::ClientContext*, const ScaledObjectRef*, grpc::ClientReadReactor<Response>*)>;

  StreamBridge(grpc::CallbackServerContext* server_ctx, const ScaledObjectRef* request, const Starter& start) {
    client_ctx_.set_deadline(server_ctx->deadline());
    start(&client_ctx_, request, this);
    grpc::ClientReadReactor<Response>::StartRead(&message_);
    grpc::ClientReadReactor<Response>::StartCall();
  }

  void OnReadDone(bool ok) override {
    if (ok) grpc::ServerWriteReactor<Response>::StartWrite(&message_);  // the backend's OnDone follows !ok
  }
  void OnWriteDone(bool ok) override {
    if (ok) {
      grpc::ClientReadReactor<Response>::StartRead(&message_);
    } else {
      client_ctx_.TryCancel();
    }
  }
  void OnDone(const grpc::Status& status) override {  // backend stream ended
    grpc::ServerWriteReactor<Response>::Finish(status);
    Release();
  }
  void OnCancel() override { client_ctx_.TryCancel(); }  // KEDA went away
  void OnDone() override { Release(); }                 // server side finished

 private:
  void Release() {
    if (pending_.fetch_sub(1) == 1) delete this;
  }
  grpc::ClientContext client_ctx_;
  Response message_;
  std::atomic<int> pending_{2};
};

class Frontend final : public ExternalScaler::CallbackService {
 public:
  Frontend(std::shared_ptr<grpc::Channel> backend, const TableHolder& table, Stats& stats)
      : backend_(ExternalScaler::NewStub(std::move(backend))), table_(table), stats_(stats) {}

  grpc::ServerUnaryReactor* GetMetricSpec(grpc::CallbackServerContext* ctx, const ScaledObjectRef* request,
                                          GetMetricSpecResponse* response) override {
    // Static: answered from any table entry, however old (KEDA's fallback never engages when it fails).
    auto table = table_.Get();
    auto it = table->answers.find(CanonicalKey(request->scalermetadata()));
    if (it == table->answers.end()) {
      return Forward(ctx, [&](grpc::ClientContext* c, std::function<void(grpc::Status)> done) {
        backend_->async()->GetMetricSpec(c, request, response, std::move(done));
      });
    }
    auto* spec = response->add_metricspecs();
    spec->set_metricname(it->second.metric_name());
    spec->set_targetsize(std::max<int64_t>(1, static_cast<int64_t>(std::llround(it->second.target()))));
    spec->set_targetsizefloat(it->second.target());
    return Done(ctx, Stats::kGetMetricSpec, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* ctx, const GetMetricsRequest* request,
                                       GetMetricsResponse* response) override {
    auto table = table_.Get();
    const auto* answer = Fresh(*table, request->scaledobjectref().scalermetadata());
    std::string asked = StripIndexPrefix(request->metricname());
    if (answer == nullptr || (!asked.empty() && asked != answer->metric_name())) {
      return Forward(ctx, [&](grpc::ClientContext* c, std::function<void(grpc::Status)> done) {
        backend_->async()->GetMetrics(c, request, response, std::move(done));
      });
    }
    ctx->AddTrailingMetadata("llmobs-snapshot-version", table->version);
    if (answer->code() != 0) return Done(ctx, Stats::kGetMetrics, Status(*answer));
    auto* value = response->add_metricvalues();
    value->set_metricname(request->metricname().empty() ? answer->metric_name() : request->metricname());
    value->set_metricvalue(static_cast<int64_t>(std::nearbyint(answer->value())));  // Python's round(): half-even
    value->set_metricvaluefloat(answer->value());
    return Done(ctx, Stats::kGetMetrics, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* IsActive(grpc::CallbackServerContext* ctx, const ScaledObjectRef* request,
                                     IsActiveResponse* response) override {
    auto table = table_.Get();
    const auto* answer = Fresh(*table, request->scalermetadata());
    if (answer == nullptr) {
      return Forward(ctx, [&](grpc::ClientContext* c, std::function<void(grpc::Status)> done) {
        backend_->async()->IsActive(c, request, response, std::move(done));
      });
    }
    ctx->AddTrailingMetadata("llmobs-snapshot-version", table->version);
    if (answer->code() != 0) return Done(ctx, Stats::kIsActive, Status(*answer));
    response->set_result(answer->active());
    return Done(ctx, Stats::kIsActive, grpc::Status::OK);
  }

  grpc::ServerWriteReactor<IsActiveResponse>* StreamIsActive(grpc::CallbackServerContext* ctx,
                                                             const ScaledObjectRef* request) override {
    return new StreamBridge<IsActiveResponse>(ctx, request, [this](auto* c, auto* r, auto* reactor) {
      backend_->async()->StreamIsActive(c, r, reactor);
    });
  }

  grpc::ServerWriteReactor<GetMetricSpecResponse>* StreamMetricSpec(grpc::CallbackServerContext* ctx,
                                                                    const ScaledObjectRef* request) override {
    return new StreamBridge<GetMetricSpecResponse>(ctx, request, [this](auto* c, auto* r, auto* reactor) {
      backend_->async()->StreamMetricSpec(c, r, reactor);
    });
  }

 private:
  // The table's answer when it may be used now; nullptr means "ask Python".
  static const llmobs::scaler::frontend::Answer* Fresh(const Table& table, const Metadata& metadata) {
    double now = Now();
    if (now > table.trusted_until) return nullptr;
    auto it = table.answers.find(CanonicalKey(metadata));
    if (it == table.answers.end() || now > it->second.valid_until()) return nullptr;
    return &it->second;
  }

  static grpc::Status Status(const llmobs::scaler::frontend::Answer& answer) {
    return grpc::Status(static_cast<grpc::StatusCode>(answer.code()), answer.message());
  }

  grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, Stats::Method method, const grpc::Status& s) {
    stats_.Count(method, s.error_code());
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(s);
    return reactor;
  }

  template <class Call>
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx, Call call) {
    auto* reactor = ctx->DefaultReactor();
    auto* client_ctx = new grpc::ClientContext();
    client_ctx->set_deadline(ctx->deadline());  // KEDA's 3 s HPA deadline carries through
    call(client_ctx, [ctx, reactor, client_ctx](grpc::Status status) {
      for (const auto& [key, value] : client_ctx->GetServerTrailingMetadata()) {  // llmobs-snapshot-version
        if (key.starts_with("llmobs-")) ctx->AddTrailingMetadata(std::string(key.data(), key.size()),
                                                                 std::string(value.data(), value.size()));
      }
      reactor->Finish(status);
      delete client_ctx;
    });
    return reactor;
  }

  std::unique_ptr<ExternalScaler::Stub> backend_;
  const TableHolder& table_;
  Stats& stats_;
};

// Reloads the table when its file changes; keeps the health status in step; writes the stats file.
void WatchTable(const std::string& path, const std::string& stats_path, TableHolder& holder, const Stats& stats,
                grpc::Server* server, const std::atomic<bool>& stop) {
  struct timespec last_mtime = {0, 0};
  ino_t last_inode = 0;
  bool last_serving = false;
  auto* health = server->GetHealthCheckService();
  auto last_stats = std::chrono::steady_clock::now();
  while (!stop.load()) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && (st.st_ino != last_inode || st.st_mtim.tv_sec != last_mtime.tv_sec ||
                                         st.st_mtim.tv_nsec != last_mtime.tv_nsec)) {
      std::ifstream in(path, std::ios::binary);
      llmobs::scaler::frontend::AnswerTable parsed;
      if (in && parsed.ParseFromIstream(&in)) {
        auto table = std::make_shared<Table>();
        table->trusted_until = parsed.written_at() + parsed.max_age_seconds();
        table->serving = parsed.serving();
        table->version = std::to_string(parsed.version());
        for (auto& answer : *parsed.mutable_answers()) table->answers[answer.key()] = std::move(answer);
        holder.Set(std::move(table));
        last_inode = st.st_ino;
        last_mtime = st.st_mtim;
      } else {
        std::cerr << "llmobs-scaler-frontend: cannot parse " << path << "; keeping the previous table\n";
        last_inode = st.st_ino;
        last_mtime = st.st_mtim;
      }
    }
    auto table = holder.Get();
    bool serving = table->serving && Now() <= table->trusted_until;
    if (serving != last_serving && health != nullptr) {
      health->SetServingStatus(kServiceName, serving);
      last_serving = serving;
    }
    if (std::chrono::steady_clock::now() - last_stats >= std::chrono::seconds(1)) {
      stats.Write(stats_path);
      last_stats = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a stat() every 5 ms: negligible CPU
  }
  stats.Write(stats_path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "llmobs-scaler-frontend: cannot read " << path << "\n";
    std::exit(2);
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  // llmobs owns this process: if llmobs dies (even by SIGKILL), stop too rather than hold KEDA's port.
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) return 1;  // the parent died before the line above
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  for (const char* required : {"--listen", "--backend", "--table", "--stats"}) {
    if (!args.count(required)) {
      std::cerr << "usage: llmobs-scaler-frontend --listen HOST:PORT --backend unix:PATH --table PATH --stats PATH"
                   " [--tls-cert PEM --tls-key PEM [--client-ca PEM]]\n";
      return 2;
    }
  }
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (args.count("--tls-cert")) {
    bool mtls = args.count("--client-ca") > 0;
    grpc::SslServerCredentialsOptions options(mtls ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_key_cert_pairs.push_back({ReadFile(args["--tls-key"]), ReadFile(args["--tls-cert"])});
    if (mtls) options.pem_root_certs = ReadFile(args["--client-ca"]);
    creds = grpc::SslServerCredentials(options);
  }

  TableHolder table;
  Stats stats;
  Frontend service(grpc::CreateChannel(args["--backend"], grpc::InsecureChannelCredentials()), table, stats);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(args["--listen"], creds, &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a second process on the port must fail to bind
  // The same limits as the Python server (llmobs.serving.scaler.server): whoever reaches the port can call it.
  builder.SetMaxReceiveMessageSize(64 * 1024);
  builder.SetMaxSendMessageSize(64 * 1024);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 4096);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "llmobs-scaler-frontend: cannot listen on " << args["--listen"] << "\n";
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("", true);
  server->GetHealthCheckService()->SetServingStatus(kServiceName, false);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::cout << "listening " << port << std::endl;

  std::atomic<bool> watcher_stop{false};
  std::thread watcher(WatchTable, args["--table"], args["--stats"], std::ref(table), std::cref(stats),
                      server.get(), std::cref(watcher_stop));
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  watcher_stop.store(true);
  watcher.join();
  return 0;
}
