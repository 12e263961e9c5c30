# cmake -DIN=chat.html -DOUT=ui_page.cpp -P embed_page.cmake: the chat page as a string constant
# (ember::server::kChatPage), so the binary serves it with no file beside it.
file(READ "${IN}" body)
file(WRITE "${OUT}" "// Generated from server/ui/chat.html by embed_page.cmake; do not edit.\n"
  "#include \"server/ui/ui_page.h\"\n\nnamespace ember::server {\n"
  "extern const char* const kChatPage = R\"ember_ui(${body})ember_ui\";\n}  // namespace ember::server\n")
