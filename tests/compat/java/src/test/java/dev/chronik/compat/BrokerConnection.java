package dev.chronik.compat;

import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.time.Duration;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

/** The broker under test, as every suite class reaches it: its address and an admin client. */
final class BrokerConnection {
    private BrokerConnection() {}

    /** The broker's address from BOOTSTRAP; the suite cannot run without it. */
    static String bootstrap() {
        String bootstrap = System.getenv("BOOTSTRAP");
        assertNotNull(bootstrap, "set BOOTSTRAP=host:port of the broker under test");
        return bootstrap;
    }

    static Admin admin(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        return Admin.create(props);
    }

    static void close(Admin admin) {
        if (admin != null) {
            admin.close(Duration.ofSeconds(5));
        }
    }
}
