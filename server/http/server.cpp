#include "server/http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace ember::http {

using Clock = std::chrono::steady_clock;

// Lingering close (as nginx does it): after an early error answer, what the client still sends
// is read and dropped for at most this long / this many bytes, or until it is quiet this long.
constexpr std::chrono::seconds kLingerTime{30}, kLingerIdle{5};
constexpr size_t kLingerBytes = size_t{1} << 30;

// The OpenAI-style `code` string for the statuses the HTTP layer answers by itself.
const char* error_code(int status) {
  switch (status) {
    case 408:
      return "request_timeout";
    case 413:
      return "request_too_large";
    case 417:
      return "expectation_failed";
    case 431:
      return "request_header_fields_too_large";
    case 501:
      return "not_implemented";
    case 503:
      return "server_busy";
    case 505:
      return "http_version_not_supported";
    default:
      return status >= 500 ? "internal_error" : "invalid_request_error";
  }
}

// One client connection: its input being parsed, the request being answered (one at a time;
// pipelined requests wait in the input buffer), and output waiting for the socket.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, int fd, std::string peer)
      : server_(server), fd_(fd), peer_(std::move(peer)), parser_(server.options_.limits) {
    last_activity_ = Clock::now();
  }
  ~Connection() {
    if (responder_) responder_->closed_ = true;
    ::close(fd_);
  }

  int fd() const { return fd_; }

  void on_events(uint32_t events) {
    if (events & (EPOLLHUP | EPOLLERR)) return close_now();
    if (events & (EPOLLIN | EPOLLRDHUP)) read_input();
    if (closed_) return;
    if (events & EPOLLRDHUP) peer_hung_up();
    if (closed_) return;
    if (events & EPOLLOUT) flush();
  }

  // The client will send nothing more. One whose request is still being answered has gone
  // away (closed, or timed out and retried): like nginx, ember takes that as a hang-up, closes,
  // and the responder reads closed() so the request's work stops (queued or generating). With
  // nothing in flight, what is already queued for the client is still sent.
  void peer_hung_up() {
    peer_done_ = true;
    close_after_write_ = true;
    update_interest();
    if (responder_ || streaming_) return close_unless_answered();
    if (output_.size() == offset_ && input_.empty()) return close_now();
  }

  // Called every second: timeouts.
  void tick(Clock::time_point now) {
    const ServerOptions& o = server_.options_;
    if (lingering_) {
      if (now - linger_started_ > kLingerTime || now - last_activity_ > kLingerIdle) close_now();
      return;
    }
    if (output_.size() > offset_ && now - last_write_progress_ > o.write_timeout)
      return close_now();
    if (responder_) return;  // a handler is working; generation may take long
    if (parser_.pending() > 0) {
      if (now - request_started_ > o.request_timeout) {
        send_error(408, "the request was not received in time");
        close_after_write_ = true;
      }
    } else if (now - last_activity_ > o.idle_timeout && output_.size() == offset_) {
      close_now();
    }
  }

  // From the Responder (on the loop's thread).
  void send(Response r, Responder* from) {
    if (from != responder_.get()) return;
    std::string head = status_line(r.status);
    append_common_headers(head, r.headers);
    head += "Content-Type: " + r.content_type + "\r\n";
    head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
    queue(head);
    if (!head_request_) queue(r.body);
    finish_response(r.status, r.body.size());
  }

  void start_stream(int status, const std::string& content_type, const Headers& headers,
                    Responder* from) {
    if (from != responder_.get() || streaming_) return;
    streaming_ = true;
    stream_status_ = status;
    // HTTP/1.0 has no chunked coding: the body ends when the connection closes.
    chunked_ = request_minor_version_ >= 1;
    if (!chunked_) close_after_write_ = true;
    std::string head = status_line(status);
    append_common_headers(head, headers);
    head += "Content-Type: " + content_type + "\r\nCache-Control: no-cache\r\n";
    if (chunked_) head += "Transfer-Encoding: chunked\r\n";
    head += "X-Accel-Buffering: no\r\n\r\n";
    queue(head);
    if (head_request_) chunked_ = false;
  }

  void write_stream(const std::string& data, Responder* from) {
    if (from != responder_.get() || !streaming_ || data.empty() || head_request_) return;
    if (chunked_) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", data.size());
      queue(size + data + "\r\n");
    } else {
      queue(data);
    }
    stream_bytes_ += data.size();
  }

  void end_stream(Responder* from) {
    if (from != responder_.get() || !streaming_) return;
    if (chunked_) queue("0\r\n\r\n");
    streaming_ = false;
    finish_response(stream_status_, stream_bytes_);
  }

  void add_log_field(std::string field, Responder* from) {
    if (from == responder_.get()) log_fields_ += " " + field;
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    if (responder_) responder_->closed_ = true;
    server_.remove(fd_);  // destroys this
  }

  void abandon() {
    if (responder_) responder_->closed_ = true;
  }

  bool idle() const { return !responder_ && output_.size() == offset_; }
  // A request is being received, answered or its answer written.
  bool busy() const { return !idle() || streaming_ || !input_.empty() || parser_.pending() > 0; }
  // Closes after the answer in progress (or the next request's, for a connection that has not
  // sent one yet); `close_idle` closes a connection with nothing in progress at once.
  void set_draining(bool close_idle) {
    draining_ = true;
    if (close_idle && !busy()) close_now();
  }

  // Pipelined input beyond what one request may hold, while one is being answered, waits in
  // the kernel: reading stops (update_interest drops EPOLLIN) until the answer is done.
  bool input_full() const {
    return responder_ && input_.size() > server_.options_.limits.max_header_bytes +
                                             server_.options_.limits.max_body_bytes;
  }

  void read_input() {
    char buf[16384];
    while (!closed_ && !input_full()) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0 && draining_after_error_) {
        // The request was answered with an error before it was all received: drop the rest.
        last_activity_ = Clock::now();
        dropped_bytes_ += static_cast<size_t>(n);
        if (dropped_bytes_ > kLingerBytes) return close_now();
        continue;
      }
      if (n > 0) {
        last_activity_ = Clock::now();
        if (input_.empty() && parser_.pending() == 0) request_started_ = last_activity_;
        input_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) {
        peer_done_ = true;
        if (lingering_ || responder_ || streaming_ || (idle() && input_.empty()))
          return close_now();
        close_after_write_ = true;
        update_interest();
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return close_now();
    }
    process_input();
  }

 private:
  friend class Server;

  // Parses buffered input into the next request and dispatches it.
  void process_input() {
    while (!closed_ && !responder_ && !draining_after_error_) {
      if (input_.empty()) break;
      const size_t used = parser_.feed(input_);
      input_.erase(0, used);
      if (parser_.failed()) {
        // Set first: sending may finish the response and close (lingering, see linger()).
        draining_after_error_ = true;
        input_.clear();
        send_error(parser_.error_status(), parser_.error_message());
        return;
      }
      if (parser_.in_body() && parser_.request().expect_continue && !sent_continue_ &&
          parser_.request().body.empty()) {
        sent_continue_ = true;
        queue("HTTP/1.1 100 Continue\r\n\r\n");
      }
      if (!parser_.done()) break;
      dispatch(parser_.take());
    }
    if (peer_done_ && idle() && input_.empty()) close_now();
  }

  void dispatch(Request request) {
    sent_continue_ = false;
    started_ = Clock::now();
    method_ = request.method;
    path_ = request.target;
    head_request_ = request.method == "HEAD";
    request_minor_version_ = request.minor_version;
    if (!request.keep_alive || draining_) close_after_write_ = true;
    origin_.clear();
    if (const std::string* o = request.header("origin")) origin_ = *o;
    log_fields_.clear();
    responder_.reset(new Responder(server_.loop_, weak_from_this()));
    auto responder = responder_;
    if (request.method == "OPTIONS" && request.header("access-control-request-method")) {
      // CORS preflight: answered here for every route.
      Response r;
      r.status = 204;
      r.content_type = "text/plain";
      const std::string* asked = request.header("access-control-request-headers");
      r.headers = {{"Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"},
                   {"Access-Control-Allow-Headers", asked ? *asked : "Authorization, Content-Type"},
                   {"Access-Control-Max-Age", "86400"}};
      send(std::move(r), responder.get());
      return;
    }
    // A handler's bug must not take the server down: it becomes a 500 for this request.
    try {
      server_.handler_(request, responder);
    } catch (const std::exception& e) {
      send_error(500, std::string("internal error: ") + e.what());
    }
    // A request that arrived with (or after) the client's hang-up: no further event will say
    // the client is gone.
    if (peer_done_) close_unless_answered();
  }

  // The client is gone while a request is being answered: close — cancelling the work — unless
  // the handler answered at once. Its answer is posted to the loop, so this check is posted
  // behind it (a request sent with a half-close, as `nc -N` does, still gets its answer).
  void close_unless_answered() {
    server_.loop_.post([self = weak_from_this(), responder = responder_] {
      auto c = self.lock();
      if (c && !c->closed_ && c->responder_ && c->responder_ == responder) c->close_now();
    });
  }

  void send_error(int status, const std::string& message) {
    if (!responder_) {
      responder_.reset(new Responder(server_.loop_, weak_from_this()));
      started_ = Clock::now();
      method_ = "-";
      path_ = "-";
    }
    Response r;
    r.status = status;
    std::string escaped;
    for (char c : message) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    r.body = "{\"error\":{\"message\":\"" + escaped + "\",\"type\":\"" +
             (status >= 500 ? "server_error" : "invalid_request_error") +
             "\",\"param\":null,\"code\":\"" + error_code(status) + "\"}}";
    close_after_write_ = true;
    send(std::move(r), responder_.get());
  }

  std::string status_line(int status) const {
    return "HTTP/1." + std::to_string(request_minor_version_ >= 1 ? 1 : 0) + " " +
           std::to_string(status) + " " + Server::reason_phrase(status) + "\r\n";
  }

  void append_common_headers(std::string& head, const Headers& extra) const {
    head += "Server: ember\r\n";
    // A draining server closes every connection after its answer: say so in that answer.
    head +=
        close_after_write_ || draining_ ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
    const auto& origins = server_.options_.cors_origins;
    if (!origins.empty()) {
      const bool any = std::find(origins.begin(), origins.end(), "*") != origins.end();
      if (any) {
        head += "Access-Control-Allow-Origin: *\r\n";
      } else if (!origin_.empty() &&
                 std::find(origins.begin(), origins.end(), origin_) != origins.end()) {
        head += "Access-Control-Allow-Origin: " + origin_ + "\r\nVary: Origin\r\n";
      }
    }
    for (const auto& [k, v] : extra) head += k + ": " + v + "\r\n";
  }

  void queue(const std::string& data) {
    if (closed_) return;
    if (output_.size() - offset_ + data.size() > server_.options_.max_output_buffer)
      return close_now();  // the client reads nothing; stop producing for it
    if (output_.size() == offset_) last_write_progress_ = Clock::now();
    output_ += data;
    flush();
  }

  void flush() {
    while (!closed_ && offset_ < output_.size()) {
      const ssize_t n =
          ::send(fd_, output_.data() + offset_, output_.size() - offset_, MSG_NOSIGNAL);
      if (n > 0) {
        offset_ += static_cast<size_t>(n);
        last_write_progress_ = last_activity_ = Clock::now();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return close_now();
    }
    if (closed_) return;
    if (offset_ == output_.size()) {
      output_.clear();
      offset_ = 0;
    }
    update_interest();
    if (offset_ == output_.size() && !responder_ && close_after_write_) {
      if (draining_after_error_ && !peer_done_) return linger();
      close_now();
    }
  }

  // The epoll events this connection waits for: input until the client is done sending (a
  // level-triggered hang-up left in the set would fire forever), output while some is queued.
  void update_interest() {
    if (closed_) return;
    const bool want_out = offset_ < output_.size();
    const uint32_t in = peer_done_ && !lingering_ ? 0u
                        : input_full()            ? EPOLLRDHUP
                                                  : EPOLLIN | EPOLLRDHUP;
    const uint32_t events = in | (want_out ? EPOLLOUT : 0u);
    if (events == interest_) return;
    interest_ = events;
    server_.loop_.modify(fd_, events);
  }

  // After an early error answer (a 413 while the body is still arriving, a malformed request),
  // closing with unread input makes the kernel reset the connection, and clients that send the
  // whole body before reading (Python's urllib, requests, httpx) see "connection reset" instead
  // of the answer. So the answer is followed by a half-close, and what still arrives is read and
  // dropped until the client closes, goes quiet, or the time or byte bound runs out.
  void linger() {
    ::shutdown(fd_, SHUT_WR);
    lingering_ = true;
    linger_started_ = last_activity_ = Clock::now();
    update_interest();
  }

  void finish_response(int status, size_t bytes) {
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
    std::fprintf(stderr, "request peer=%s method=%s path=%s status=%d bytes=%zu ms=%.1f%s\n",
                 peer_.c_str(), method_.c_str(), path_.c_str(), status, bytes, ms,
                 log_fields_.c_str());
    responder_.reset();
    last_activity_ = Clock::now();
    request_started_ = last_activity_;
    if (draining_) close_after_write_ = true;
    flush();
    if (closed_) return;
    // The next pipelined request, if one is waiting. Posted, so that a long pipeline does not
    // recurse and other connections get their turn.
    if (!input_.empty() && !close_after_write_) {
      auto self = weak_from_this();
      server_.loop_.post([self] {
        if (auto c = self.lock()) c->process_input();
      });
    }
  }

  Server& server_;
  int fd_;
  std::string peer_;
  RequestParser parser_;
  std::string input_, output_;
  size_t offset_ = 0;                     // bytes of output_ already sent
  std::shared_ptr<Responder> responder_;  // the request being answered
  bool closed_ = false, close_after_write_ = false, peer_done_ = false, draining_ = false;
  bool draining_after_error_ = false, sent_continue_ = false, lingering_ = false;
  uint32_t interest_ = EPOLLIN | EPOLLRDHUP;  // the events the loop watches for
  bool streaming_ = false, chunked_ = false, head_request_ = false;
  int stream_status_ = 200, request_minor_version_ = 1;
  size_t stream_bytes_ = 0, dropped_bytes_ = 0;
  std::string method_, path_, origin_, log_fields_;
  Clock::time_point last_activity_, request_started_, started_, last_write_progress_,
      linger_started_;
};

// ---- Responder: every call hops to the loop's thread ----

// The posted work holds the responder alive, so a connection never mistakes a new responder
// at a reused address for the one that queued the work.
void Responder::run_on_connection(std::function<void(Connection&)> fn) {
  loop_.post([self = shared_from_this(), fn = std::move(fn)] {
    if (auto c = self->connection_.lock()) fn(*c);
  });
}

void Responder::send(Response response) {
  run_on_connection(
      [this, r = std::move(response)](Connection& c) mutable { c.send(std::move(r), this); });
}

void Responder::start_stream(int status, std::string content_type, Headers headers) {
  run_on_connection([this, status, t = std::move(content_type), h = std::move(headers)](
                        Connection& c) { c.start_stream(status, t, h, this); });
}

void Responder::write(std::string data) {
  run_on_connection([this, d = std::move(data)](Connection& c) { c.write_stream(d, this); });
}

void Responder::end() {
  run_on_connection([this](Connection& c) { c.end_stream(this); });
}

void Responder::log_field(std::string field) {
  run_on_connection([this, f = std::move(field)](Connection& c) { c.add_log_field(f, this); });
}

// ---- Server ----

Server::Server(EventLoop& loop, ServerOptions options, Handler handler)
    : loop_(loop), options_(std::move(options)), handler_(std::move(handler)) {
  loop_.every(std::chrono::milliseconds(1000), [this] { tick(); });
}

Server::~Server() {
  stop_accepting();
  for (auto& [fd, c] : connections_) loop_.unwatch(fd);
}

int Server::listen(const std::string& host, int port) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found))
    throw std::runtime_error("cannot resolve '" + host + "': " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 512) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(
        "cannot listen on " + host + ":" + service + ": " + std::strerror(err) +
        (err == EADDRINUSE
             ? " (another server is there; pick another --bind port, or 0 for any free one)"
             : ""));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int bound =
      ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                       : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  listen_fd_ = fd;
  accepting_ = true;
  loop_.watch(fd, EPOLLIN, [this](uint32_t) { on_accept(); });
  return bound;
}

void Server::stop_accepting() {
  if (listen_fd_ < 0) return;
  loop_.unwatch(listen_fd_);
  ::close(listen_fd_);
  listen_fd_ = -1;
  accepting_ = false;
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [fd, c] : connections_) all.push_back(c);
  for (auto& c : all) c->set_draining(true);
}

void Server::drain() {
  draining_ = true;
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [fd, c] : connections_) all.push_back(c);
  for (auto& c : all) c->set_draining(true);
}

size_t Server::busy_count() const {
  size_t n = 0;
  for (const auto& [fd, c] : connections_) n += c->busy();
  return n;
}

void Server::abandon_all() {
  for (auto& [fd, c] : connections_) c->abandon();
}

void Server::on_accept() {
  while (true) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or out of descriptors: try again on the next event
    }
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      const std::string body =
          "{\"error\":{\"message\":\"too many connections, try again shortly\","
          "\"type\":\"server_error\",\"param\":null,\"code\":\"server_busy\"}}";
      const std::string busy =
          "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
          "Content-Type: application/json\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      [[maybe_unused]] ssize_t n = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
      ::close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr.ss_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, host, sizeof host);
    else if (addr.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, host, sizeof host);
    auto c = std::make_shared<Connection>(*this, fd, host);
    if (draining_) c->set_draining(false);  // one request, then close
    connections_[fd] = c;
    std::weak_ptr<Connection> weak = c;
    loop_.watch(fd, EPOLLIN | EPOLLRDHUP, [weak](uint32_t events) {
      if (auto conn = weak.lock()) conn->on_events(events);
    });
  }
}

void Server::remove(int fd) {
  loop_.unwatch(fd);
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  // Destroy after the caller's frame unwinds: the connection may be running this call.
  auto keep = it->second;
  connections_.erase(it);
  loop_.post([keep] {});
}

void Server::tick() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Connection>> all;
  all.reserve(connections_.size());
  for (auto& [fd, c] : connections_) all.push_back(c);
  for (auto& c : all) c->tick(now);
}

const char* Server::reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    case 507:
      return "Insufficient Storage";
    default:
      return "Unknown";
  }
}

}  // namespace ember::http
