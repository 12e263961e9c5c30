// The HTTP/1.1 server: accepts connections on the event loop, parses requests (keep-alive,
// pipelining, chunked bodies, 100-continue), hands each to the application's handler with a
// Responder, and writes what the responder is given — a whole response or a chunked stream
// (SSE, NDJSON) — without ever blocking the loop. Slow, silent and vanished clients are dropped
// by timeouts; a vanished client shows as Responder::closed() so work for it can stop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/http/event_loop.h"
#include "server/http/request.h"

namespace ember::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;  // extra headers
};

struct ServerOptions {
  ParserLimits limits;
  int max_connections = 1024;
  std::chrono::seconds idle_timeout{30};          // keep-alive connection with nothing to do
  std::chrono::seconds request_timeout{30};       // from a request's first byte to its last
  std::chrono::seconds write_timeout{60};         // a client that reads nothing of what we send
  size_t max_output_buffer = 32 << 20;            // bytes queued for a client that does not read
  std::vector<std::string> cors_origins = {"*"};  // allowed Origin values; empty: no CORS
};

class Connection;
class Server;

// How a handler answers one request, now or later, from any thread. Calls are queued to the
// event loop in order. One of send() or start_stream() … end() should be called exactly once.
class Responder : public std::enable_shared_from_this<Responder> {
 public:
  void send(Response response);
  void start_stream(int status, std::string content_type, Headers headers = {});
  void write(std::string data);  // a piece of a started stream
  void end();
  // The client went away (or the server is stopping): whatever is produced is dropped.
  bool closed() const { return closed_.load(); }
  // Fields appended to the request's log line (e.g. "tokens=12").
  void log_field(std::string field);

 private:
  friend class Connection;
  friend class Server;
  Responder(EventLoop& loop, std::weak_ptr<Connection> connection)
      : loop_(loop), connection_(std::move(connection)) {}
  void run_on_connection(std::function<void(Connection&)> fn);

  EventLoop& loop_;
  std::weak_ptr<Connection> connection_;
  std::atomic<bool> closed_{false};
};

using Handler = std::function<void(const Request&, std::shared_ptr<Responder>)>;

class Server {
 public:
  Server(EventLoop& loop, ServerOptions options, Handler handler);
  ~Server();

  // Binds HOST:PORT (port 0: any free port) and starts accepting. Returns the bound port.
  int listen(const std::string& host, int port);
  // Stops accepting; connections with nothing in flight are closed, the others close as their
  // responses end.
  void stop_accepting();
  // Keeps accepting but ends keep-alive: idle connections close now, busy ones after their
  // answer, new ones after one request (so a load balancer's clients reconnect elsewhere while
  // the application answers what it still takes). Used while a server drains before exiting.
  void drain();
  size_t connection_count() const { return connections_.size(); }
  // Connections receiving a request or answering one (a stream included).
  size_t busy_count() const;
  // Marks every in-flight responder closed (a shutdown that can wait no longer).
  void abandon_all();

  const ServerOptions& options() const { return options_; }
  static const char* reason_phrase(int status);

 private:
  friend class Connection;
  void on_accept();
  void tick();
  void remove(int fd);

  EventLoop& loop_;
  ServerOptions options_;
  Handler handler_;
  int listen_fd_ = -1;
  bool accepting_ = false;
  bool draining_ = false;
  std::unordered_map<int, std::shared_ptr<Connection>> connections_;
};

}  // namespace ember::http
