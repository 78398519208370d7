// SASL PLAIN the way Event Hubs checks it, for the test broker's EVENTHUBS listener.
//
// Event Hubs takes the user name `$ConnectionString` and a whole SAS connection string as the
// password; it accepts any string whose SharedAccessKeyName names one of the namespace's
// policies and whose SharedAccessKey is that policy's key, with or without EntityPath.
// Kafka's own PLAIN handler compares whole passwords, which would tie each test to one
// EntityPath, so this handler parses the string instead. Policies come from the listener's
// JAAS options, `policy_<name>="<key>"`.
//
// Compiled against kafka-clients by scripts/lib/kafka.sh; never part of the shipped tools.

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.NameCallback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;

import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.plain.PlainAuthenticateCallback;

public class EventHubsPlainCallbackHandler implements AuthenticateCallbackHandler {
    private static final String USER = "$ConnectionString";
    private static final String POLICY = "policy_";
    private final Map<String, String> policies = new HashMap<>();

    @Override
    public void configure(Map<String, ?> configs, String mechanism,
                          List<AppConfigurationEntry> jaasConfigEntries) {
        for (AppConfigurationEntry entry : jaasConfigEntries) {
            for (Map.Entry<String, ?> option : entry.getOptions().entrySet()) {
                if (option.getKey().startsWith(POLICY)) {
                    policies.put(option.getKey().substring(POLICY.length()),
                                 String.valueOf(option.getValue()));
                }
            }
        }
    }

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        String user = null;
        for (Callback callback : callbacks) {
            if (callback instanceof NameCallback) {
                user = ((NameCallback) callback).getDefaultName();
            } else if (callback instanceof PlainAuthenticateCallback) {
                PlainAuthenticateCallback plain = (PlainAuthenticateCallback) callback;
                plain.authenticated(USER.equals(user) && valid(new String(plain.password())));
            } else {
                throw new UnsupportedCallbackException(callback);
            }
        }
    }

    /** Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=…] */
    private boolean valid(String connectionString) {
        Map<String, String> parts = new HashMap<>();
        for (String segment : connectionString.split(";")) {
            int eq = segment.indexOf('=');
            if (eq > 0) {
                parts.put(segment.substring(0, eq).trim(), segment.substring(eq + 1));
            }
        }
        String endpoint = parts.get("Endpoint");
        String name = parts.get("SharedAccessKeyName");
        String key = parts.get("SharedAccessKey");
        if (endpoint == null || !endpoint.startsWith("sb://") || name == null || key == null) {
            return false;
        }
        String expected = policies.get(name);
        return expected != null && MessageDigest.isEqual(
            expected.getBytes(StandardCharsets.UTF_8), key.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public void close() {
    }
}
