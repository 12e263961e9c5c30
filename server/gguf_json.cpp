#include "server/gguf_json.h"

namespace ember::server {

nlohmann::ordered_json gguf_value_json(const gguf::Value& v, uint64_t summarise_over) {
  using json = nlohmann::ordered_json;
  using gguf::ValueType;
  switch (v.type()) {
    case ValueType::STRING:
      return std::string(v.as_string());
    case ValueType::BOOL:
      return v.as_bool();
    case ValueType::F32:
    case ValueType::F64:
      return v.as_double();
    case ValueType::U64:
      return v.as_uint();
    case ValueType::ARRAY: {
      if (summarise_over > 0 && v.size() > summarise_over)
        return {{"type", "array"},
                {"element_type", std::string(gguf::value_type_name(v.element_type()))},
                {"length", v.size()}};
      json items = json::array();
      for (uint64_t i = 0; i < v.size(); ++i) {
        switch (v.element_type()) {
          case ValueType::STRING:
            items.push_back(std::string(v.string_at(i)));
            break;
          case ValueType::ARRAY:
            items.push_back(gguf_value_json(v.array_at(i), summarise_over));
            break;
          case ValueType::F32:
          case ValueType::F64:
            items.push_back(v.double_at(i));
            break;
          case ValueType::BOOL:
            items.push_back(v.int_at(i) != 0);
            break;
          case ValueType::U64:
            items.push_back(static_cast<uint64_t>(v.int_at(i)));
            break;
          default:
            items.push_back(v.int_at(i));
        }
      }
      return items;
    }
    default:
      return v.as_int();
  }
}

}  // namespace ember::server
