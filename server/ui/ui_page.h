// The chat page served at GET /ui (server/ui/chat.html, embedded at build time): model picker,
// streamed answers with markdown, stop, system prompt, sampling settings, a pull box with a
// progress bar. Self-contained: no asset is fetched from elsewhere.
#pragma once

namespace ember::server {

extern const char* const kChatPage;

}  // namespace ember::server
