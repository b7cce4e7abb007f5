// lgapd's side of CURVE: the server secret key from server_secret_key_file, the ZAP handler with the
// allow-list from allowed_clients_file, and a log line for every refused client — named a producer
// or a subscriber by the socket's ZAP domain ("ingest" or "results").
import Foundation
import Logging
import JobModel
import Messaging

public final class CurveAuthenticator: @unchecked Sendable {
    let secretKey: String
    let handler: ZAPHandler

    init(context: ZMQContext, config: DaemonConfig, log: Logger) throws {
        guard CurveKeyPair.available else { throw ConfigError(message: "[security] curve = true but this libzmq was built without CURVE") }
        guard let keyPath = config.serverSecretKeyFile, let listPath = config.allowedClientsFile else {
            throw ConfigError(message: "[security] curve = true needs server_secret_key_file and allowed_clients_file")
        }
        guard let raw = try? String(contentsOfFile: keyPath, encoding: .utf8) else {
            throw ConfigError(message: "\(keyPath): cannot read the server secret key")
        }
        // The key file may hold "secret" alone or the keygen output with "secret-key: …".
        let candidates = raw.split(whereSeparator: { $0 == "\n" || $0 == " " }).map(String.init).filter(CurveKeyPair.isZ85Key)
        guard let secret = candidates.last else { throw ConfigError(message: "\(keyPath): no Z85 secret key found") }
        secretKey = secret
        let allowed: Set<String>
        do { allowed = try ZAPHandler.readAllowList(path: listPath) } catch { throw ConfigError(message: "\(error)") }
        let publicKey = (try? CurveKeyPair.publicKey(forSecret: secret)) ?? "?"
        handler = try ZAPHandler(context: context, allowedPublicKeys: allowed) { d in
            guard !d.allowed else { return }
            let who = d.domain == "results" ? "subscriber" : "producer"
            log.warning("refused \(who): key not allowed", metadata: ["key": "\(d.key)", "address": "\(Sanitize.text(d.address))"])
        }
        log.info("CURVE enabled", metadata: ["server_key": "\(publicKey)", "allowed_clients": "\(allowed.count)"])
    }

    func configureServer(_ socket: ZMQSocket) throws { try socket.setCurveServer(secretKey: secretKey) }

    func stop() { handler.stop() }
}
