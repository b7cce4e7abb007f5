// SHA-256 through OpenSSL's libcrypto (EVP), which uses the CPU's SHA extensions where present, and a
// table-driven hex encoder. Provenance hashes every input, purified image and model file with it.
import CCrypto
import Foundation

public struct SHA256: Sendable {
    /// One EVP context per hasher (a class so the C context is freed exactly once).
    private final class Context: @unchecked Sendable {
        let ctx: OpaquePointer
        init() {
            guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
                fatalError("libcrypto cannot initialise SHA-256")  // out of memory or a broken libcrypto
            }
            ctx = c
        }
        deinit { EVP_MD_CTX_free(ctx) }
    }

    private let context = Context()

    public init() {}

    public mutating func update<D: Collection>(_ data: D) where D.Element == UInt8 {
        let done = data.withContiguousStorageIfAvailable { buf in
            _ = EVP_DigestUpdate(context.ctx, buf.baseAddress, buf.count)
        }
        if done == nil {
            let copy = Array(data)
            copy.withUnsafeBytes { _ = EVP_DigestUpdate(context.ctx, $0.baseAddress, $0.count) }
        }
    }

    /// The 32-byte digest (the hasher is spent afterwards).
    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var n: UInt32 = 0
        _ = EVP_DigestFinal_ex(context.ctx, &out, &n)
        return out
    }

    /// Lower-case hex digest of `data`.
    public static func hex<D: Collection>(_ data: D) -> String where D.Element == UInt8 {
        var s = SHA256()
        s.update(data)
        return hexString(s.finalize())
    }

    /// Hex digest of a file, read in 1 MiB pieces.
    public static func hex(fileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var s = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { s.update(chunk) }
        return hexString(s.finalize())
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lower-case hex of bytes, two table lookups a byte.
    public static func hexString(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: bytes.count * 2)
        for (i, b) in bytes.enumerated() {
            out[2 * i] = hexDigits[Int(b >> 4)]
            out[2 * i + 1] = hexDigits[Int(b & 15)]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
