// Files lgapctl writes for operators (exported images, secret keys): created with open(2) flags that
// never follow a symbolic link at the destination and, unless replacing is asked for, never touch an
// existing file — a secret key is 0600 from its first byte, not chmod-ed after the fact.
import ArgumentParser
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

enum SafeFile {
    static func write(_ bytes: [UInt8], to path: String, replacing: Bool, mode: mode_t = 0o644) throws {
        var flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        flags |= replacing ? O_TRUNC : O_EXCL
        let fd = open(path, flags, mode)
        guard fd >= 0 else {
            let e = errno
            switch e {
            case EEXIST: throw ValidationError("\(path) exists; use --force to replace it")
            case ELOOP: throw ValidationError("\(path) is a symbolic link; lgapctl does not write through links")
            default: throw ValidationError("cannot create \(path): \(String(cString: strerror(e)))")
            }
        }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard n > 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
        guard fsync(fd) == 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}
