// A Kafka Streams word count, run on shoal by tests/peers/test_kafka_streams.py.
//
// lines (input topic) -> words -> groupBy(word) [repartition topic] -> count() [state store
// "counts", whose changelog topic is compacted] -> counts (output topic, word -> count).
//
// Usage: ShoalWordCount BOOTSTRAP APPLICATION_ID STATE_DIR INPUT OUTPUT [PROCESSING_GUARANTEE]
// (PROCESSING_GUARANTEE: at_least_once, the default, or exactly_once_v2, used by
// tests/peers/test_kafka_streams_eos.py).
// Prints "STATE <new state>" on each state change, so the test sees RUNNING and restoration.
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

public final class ShoalWordCount {
    public static void main(String[] args) throws InterruptedException {
        String bootstrap = args[0], applicationId = args[1], stateDir = args[2];
        String input = args[3], output = args[4];

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        if (args.length > 5) {
            props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args[5]);
        }
        // Commit (and so purge the repartition topic with DeleteRecords) often, and write every
        // count update to the changelog (no record cache), so a short test sees both.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // A SIGKILLed instance leaves its member in the group until its session times out; the
        // restarted one waits for that rebalance, so keep it at the broker's minimum (6 s).
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);

        // The changelog's topic configs, set through Streams: small segments that roll fast and
        // a low dirty ratio, so shoal's cleaner compacts it within the test.
        Map<String, String> changelog = Map.of(
            TopicConfig.SEGMENT_MS_CONFIG, "200",
            TopicConfig.MIN_CLEANABLE_DIRTY_RATIO_CONFIG, "0.01");

        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> lines = builder.stream(input);
        lines.flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
            .filter((key, word) -> !word.isEmpty())
            .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
            .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                .withLoggingEnabled(changelog))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(streams::close));
        streams.start();
        done.await();
        System.exit(streams.state() == KafkaStreams.State.NOT_RUNNING ? 0 : 1);
    }
}
