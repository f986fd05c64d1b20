// A subscriber of rtseg's mask protocol in C++17, written from PROTOCOL.md alone: ZeroMQ
// through cppzmq, MessagePack through msgpack-cxx, PNG masks through libpng's simplified
// API (Debian: libzmq3-dev, cppzmq-dev, libmsgpack-cxx-dev, libpng-dev). What a navigation
// node in C++ starts from; the tests build it and check it against the Python client.
//
//   g++ -std=c++17 -O2 -DMSGPACK_NO_BOOST rtseg_subscriber.cpp -o sub -lzmq -lpng
//   ./sub tcp://127.0.0.1:5555 20 demo/drivable demo/classes
//
// Receives until COUNT messages were accepted (or 30 s pass without one) and prints a line
// per message:
//   ok TOPIC KIND SEQ STAMP_NS WIDTHxHEIGHT ENCODING SET_PIXELS FNV1A64
// (SET_PIXELS: pixels whose value is not 0; the hash is FNV-1a over the mask decoded to
// mono8, height * width bytes row-major, "bits" unpacked to 0/1, "png" decoded), or, for
// a message that breaks the protocol (a PNG's too: its size, depth and bytes),
//   reject TOPIC REASON
// and goes on: a reader rejects bad input with a reason, without crashing or allocating
// without bound (msgpack's unpack limits, sizes checked before use).

#include <msgpack.hpp>
#include <png.h>
#include <zmq.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kMaxSide = 8192;  // the protocol's default size limit

struct Mask {
  std::string kind, frame_id, encoding, model;
  uint64_t v = 0, seq = 0, stamp_ns = 0, width = 0, height = 0;
  std::vector<std::string> classes;
  const char* data = nullptr;
  uint64_t size = 0;
};

struct Reject : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const msgpack::object& field(const std::map<std::string, const msgpack::object*>& map,
                             const std::string& key, msgpack::type::object_type type) {
  auto it = map.find(key);
  if (it == map.end()) throw Reject("missing key " + key);
  if (it->second->type != type) throw Reject("key " + key + " has the wrong type");
  return *it->second;
}

uint64_t uint_field(const std::map<std::string, const msgpack::object*>& map,
                    const std::string& key) {
  return field(map, key, msgpack::type::POSITIVE_INTEGER).via.u64;
}

std::string str_field(const std::map<std::string, const msgpack::object*>& map,
                      const std::string& key) {
  const auto& o = field(map, key, msgpack::type::STR);
  return std::string(o.via.str.ptr, o.via.str.size);
}

// The payload's map -> a Mask, every rule of PROTOCOL.md's reader obligations checked.
Mask parse(const msgpack::object& root) {
  if (root.type != msgpack::type::MAP) throw Reject("the payload is not a map");
  std::map<std::string, const msgpack::object*> map;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR)  // unknown extra keys are allowed, ignored
      map[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] = &kv.val;
  }
  Mask m;
  m.v = uint_field(map, "v");
  if (m.v != 1) throw Reject("protocol version " + std::to_string(m.v) + ", not 1");
  m.kind = str_field(map, "kind");
  if (m.kind != "drivable" && m.kind != "classes") throw Reject("kind " + m.kind);
  m.seq = uint_field(map, "seq");
  m.stamp_ns = uint_field(map, "stamp_ns");
  m.frame_id = str_field(map, "frame_id");
  m.width = uint_field(map, "width");
  m.height = uint_field(map, "height");
  if (m.width < 1 || m.height < 1 || m.width > kMaxSide || m.height > kMaxSide)
    throw Reject("size " + std::to_string(m.width) + "x" + std::to_string(m.height));
  m.encoding = str_field(map, "encoding");
  m.model = str_field(map, "model");
  const auto& classes = field(map, "classes", msgpack::type::ARRAY);
  for (uint32_t i = 0; i < classes.via.array.size; ++i) {
    const auto& c = classes.via.array.ptr[i];
    if (c.type != msgpack::type::STR) throw Reject("a class name is not a string");
    m.classes.emplace_back(c.via.str.ptr, c.via.str.size);
  }
  if (m.kind == "drivable" &&
      m.classes != std::vector<std::string>{"not_drivable", "drivable"})
    throw Reject("drivable classes are not [not_drivable, drivable]");
  const auto& data = field(map, "data", msgpack::type::BIN);
  m.data = data.via.bin.ptr;
  m.size = data.via.bin.size;
  uint64_t pixels = m.width * m.height;
  uint64_t want = m.encoding == "mono8" ? pixels
                  : m.encoding == "bits" ? (pixels + 7) / 8 : m.size;
  if (m.encoding == "bits" && m.kind != "drivable") throw Reject("bits on a classes mask");
  if (m.encoding != "mono8" && m.encoding != "bits" && m.encoding != "png")
    throw Reject("encoding " + m.encoding);
  if (m.size != want)
    throw Reject("data is " + std::to_string(m.size) + " bytes, " + m.encoding + " " +
                 std::to_string(m.width) + "x" + std::to_string(m.height) + " needs " +
                 std::to_string(want));
  return m;
}

// A "png" mask as height * width mono8 bytes. The header is checked before libpng
// decodes anything (the size the message gives, 8-bit grayscale: a PNG of another depth
// or colour type would be converted, its values changed), so a hostile PNG cannot make
// it allocate more than the message's own size.
std::vector<uint8_t> decode_png(const Mask& m) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(m.data);
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (m.size < 33 || std::memcmp(bytes, kSignature, 8) != 0 ||
      std::memcmp(bytes + 12, "IHDR", 4) != 0)
    throw Reject("data is not a PNG (no signature + IHDR)");
  auto be32 = [&](int at) {
    return uint64_t{bytes[at]} << 24 | uint64_t{bytes[at + 1]} << 16 |
           uint64_t{bytes[at + 2]} << 8 | uint64_t{bytes[at + 3]};
  };
  if (be32(16) != m.width || be32(20) != m.height)
    throw Reject("PNG is " + std::to_string(be32(16)) + "x" + std::to_string(be32(20)) +
                 ", the message says " + std::to_string(m.width) + "x" +
                 std::to_string(m.height));
  if (bytes[24] != 8 || bytes[25] != 0)
    throw Reject("PNG is not 8-bit grayscale (bit depth " + std::to_string(bytes[24]) +
                 ", colour type " + std::to_string(bytes[25]) + ")");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  std::vector<uint8_t> out(m.width * m.height);
  bool ok = png_image_begin_read_from_memory(&image, m.data, m.size) != 0;
  if (ok) {  // 8-bit gray read as 8-bit gray: the values as stored
    image.format = PNG_FORMAT_GRAY;
    ok = png_image_finish_read(&image, nullptr, out.data(), 0, nullptr) != 0;
  }
  std::string message = image.message;
  png_image_free(&image);
  if (!ok) throw Reject("broken PNG: " + message);
  return out;
}

// The mask as height * width mono8 bytes ("bits": big-endian bit order, as numpy.packbits).
std::vector<uint8_t> mono8(const Mask& m) {
  if (m.encoding == "png") return decode_png(m);
  std::vector<uint8_t> out(m.width * m.height);
  for (uint64_t i = 0; i < out.size(); ++i) {
    auto byte = static_cast<uint8_t>(m.data[m.encoding == "bits" ? i / 8 : i]);
    out[i] = m.encoding == "bits" ? (byte >> (7 - i % 8)) & 1 : byte;
  }
  return out;
}

uint64_t fnv1a64(const std::vector<uint8_t>& bytes) {
  uint64_t hash = 14695981039346656037ull;
  for (uint8_t b : bytes) hash = (hash ^ b) * 1099511628211ull;
  return hash;
}

void report(const std::string& topic, const Mask& m) {
  auto pixels = mono8(m);
  uint64_t count = 0;
  for (uint8_t p : pixels) count += p != 0;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(fnv1a64(pixels)));
  std::printf("ok %s %s %llu %llu %llux%llu %s %s %s\n", topic.c_str(), m.kind.c_str(),
              static_cast<unsigned long long>(m.seq),
              static_cast<unsigned long long>(m.stamp_ns),
              static_cast<unsigned long long>(m.width),
              static_cast<unsigned long long>(m.height), m.encoding.c_str(),
              std::to_string(count).c_str(), hash);
  std::fflush(stdout);
}

// One ZeroMQ frame: topic + '\0' + MessagePack map. Returns whether it was accepted.
bool handle(const zmq::message_t& frame) {
  const char* bytes = static_cast<const char*>(frame.data());
  const void* nul = std::memchr(bytes, 0, frame.size());
  if (nul == nullptr) {
    std::printf("reject - no NUL after the topic\n");
    return false;
  }
  std::string topic(bytes, static_cast<const char*>(nul) - bytes);
  size_t offset = topic.size() + 1;
  try {
    // Limits: no field of a mask message needs more; a hostile frame cannot make the
    // unpacker allocate beyond them.
    msgpack::unpack_limit limit(64, 4096, 1 << 16, kMaxSide * kMaxSide, 0, 4);
    auto handle = msgpack::unpack(bytes + offset, frame.size() - offset, nullptr, nullptr,
                                  limit);
    report(topic, parse(handle.get()));
    return true;
  } catch (const Reject& e) {
    std::printf("reject %s %s\n", topic.c_str(), e.what());
  } catch (const std::exception& e) {  // msgpack: malformed, truncated, over a limit
    std::printf("reject %s not MessagePack: %s\n", topic.c_str(), e.what());
  }
  std::fflush(stdout);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ENDPOINT COUNT TOPIC...\n", argv[0]);
    return 2;
  }
  zmq::context_t context;
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::rcvtimeo, 30000);
  for (int i = 3; i < argc; ++i)  // the prefix topic + '\0': cam0/drivable, not .../drivable2
    sub.set(zmq::sockopt::subscribe, std::string(argv[i]) + std::string(1, '\0'));
  sub.connect(argv[1]);
  long wanted = std::strtol(argv[2], nullptr, 10), accepted = 0;
  while (accepted < wanted) {
    zmq::message_t frame;
    if (!sub.recv(frame)) {
      std::fprintf(stderr, "no message for 30 s\n");
      return 1;
    }
    accepted += handle(frame);
  }
  return 0;
}
