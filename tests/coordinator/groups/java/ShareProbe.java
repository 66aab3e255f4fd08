import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Two KafkaShareConsumers of one share group on a one-partition topic (test_share_java.py):
 * both receive records of the partition; then "release" is released on its first delivery,
 * "accept" accepted, "reject" rejected, and "stuck" left unacknowledged by a consumer that
 * stops polling, so its lock times out and the other consumer gets it. Prints one line per
 * delivery: DELIVERED consumer key deliveryCount offset.
 */
public final class ShareProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        long lockMs = Long.parseLong(args[3]);
        List<KafkaShareConsumer<String, String>> consumers = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            Properties cp = new Properties();
            cp.put("bootstrap.servers", bootstrap);
            cp.put("group.id", group);
            cp.put("client.id", "c" + i);
            cp.put("share.acknowledgement.mode", "explicit");
            cp.put("key.deserializer", StringDeserializer.class.getName());
            cp.put("value.deserializer", StringDeserializer.class.getName());
            KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(cp);
            c.subscribe(List.of(topic));
            consumers.add(c);
        }
        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            // The group starts at the log end (share.auto.offset.reset=latest): the test's
            // records are produced once both consumers have fetched warm-up records.
            Set<Integer> warmed = new HashSet<>();
            for (int round = 0; warmed.size() < 2; round++) {
                if (round > 150) {
                    throw new IllegalStateException("consumers never both got warm-up records");
                }
                producer.send(new ProducerRecord<>(topic, "warm", "w" + round)).get();
                for (int i = 0; i < 2; i++) {
                    KafkaShareConsumer<String, String> c = consumers.get(i);
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        c.acknowledge(r, AcknowledgeType.ACCEPT);
                        warmed.add(i);
                    }
                    c.commitSync();
                }
            }
            System.out.println("WARMED");
            for (String key : List.of("release", "accept", "reject", "stuck")) {
                producer.send(new ProducerRecord<>(topic, key, key)).get();
            }
        }
        boolean[] active = {true, true};
        Map<String, Integer> accepted = new HashMap<>();
        long stuckAt = -1;
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline) {
            for (int i = 0; i < 2; i++) {
                if (!active[i]) {
                    continue;
                }
                KafkaShareConsumer<String, String> c = consumers.get(i);
                boolean stuck = false;
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    int count = r.deliveryCount().map(Short::intValue).orElse(-1);
                    String key = r.key();
                    System.out.println("DELIVERED c" + i + " " + key + " " + count + " " + r.offset());
                    AcknowledgeType type = AcknowledgeType.ACCEPT;
                    if (key.equals("release") && count == 1) {
                        type = AcknowledgeType.RELEASE;
                    } else if (key.equals("reject")) {
                        type = AcknowledgeType.REJECT;
                    } else if (key.equals("stuck") && count == 1) {
                        stuck = true;
                        continue;
                    }
                    c.acknowledge(r, type);
                    if (type == AcknowledgeType.ACCEPT) {
                        accepted.merge(key, 1, Integer::sum);
                    }
                }
                c.commitSync();
                if (stuck) {
                    active[i] = false;
                    stuckAt = System.currentTimeMillis();
                    System.out.println("STUCK c" + i);
                }
            }
            boolean all = accepted.containsKey("release") && accepted.containsKey("accept")
                    && accepted.containsKey("stuck");
            // Past the lock twice over, so a record delivered again would have shown.
            if (all && System.currentTimeMillis() > stuckAt + 2 * lockMs) {
                break;
            }
        }
        accepted.remove("warm");
        System.out.println("ACCEPTED " + new TreeMap<>(accepted));
        for (int i = 0; i < 2; i++) {
            if (active[i]) {
                consumers.get(i).close();
            }
        }
        System.out.println("DONE");
        System.exit(0); // the stuck consumer's threads must not keep the JVM alive
    }
}
