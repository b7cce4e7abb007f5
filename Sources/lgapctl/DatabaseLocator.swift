// Where lgapctl finds lgapd's database when --db is not given: $LGAP_DB, then the `database` key of
// [daemon] in /etc/lgapd/lgapd.toml or Config/lgapd.toml, then lgapd's default path.
import Foundation
import TOMLKit

enum DatabaseLocator {
    static func path(_ explicit: String?) -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["LGAP_DB"], !env.isEmpty { return env }
        for config in ["/etc/lgapd/lgapd.toml", "Config/lgapd.toml"] {
            if let text = try? String(contentsOfFile: config, encoding: .utf8), let table = try? TOMLTable(string: text),
               let db = table["daemon"]?.table?["database"]?.string {
                return db
            }
        }
        return "/var/lib/lgapd/lgapd.sqlite"
    }
}
