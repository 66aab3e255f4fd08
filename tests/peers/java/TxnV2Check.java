// Kafka's Java transactional producer on transactions V2 (KIP-890 part 2), run against shoal and
// Apache Kafka by tests/differential/test_java_txn_v2.py.
//
// A producer commits a transaction, aborts one, and commits one with the offsets of a consumer
// group (sendOffsetsToTransaction, which on V2 sends TxnOffsetCommit v5 and no AddOffsetsToTxn).
// A second instance with the same transactional.id then fences it: the first instance's next
// transaction must fail with a fencing error and write nothing visible; the second commits.
//
// Usage: TxnV2Check BOOTSTRAP TOPIC TRANSACTIONAL_ID GROUP
// Prints one line per step: "COMMITTED", "ABORTED", "OFFSETS", "FENCED <exception class>",
// "SUCCESSOR". The test reads the producer epoch the coordinator ends with: on V2 it was
// bumped by every transaction, not only by each initTransactions.
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TxnV2Check {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], txnId = args[2], group = args[3];
        KafkaProducer<String, String> first = producer(bootstrap, txnId);
        first.initTransactions();

        first.beginTransaction();
        send(first, topic, "c1", "c2", "c3");
        first.commitTransaction();
        System.out.println("COMMITTED");

        first.beginTransaction();
        send(first, topic, "a1", "a2");
        first.abortTransaction();
        System.out.println("ABORTED");

        first.beginTransaction();
        send(first, topic, "o1");
        first.sendOffsetsToTransaction(
            Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(7)),
            new ConsumerGroupMetadata(group));
        first.commitTransaction();
        System.out.println("OFFSETS");

        KafkaProducer<String, String> successor = producer(bootstrap, txnId);
        successor.initTransactions();  // fences the first instance
        try {
            first.beginTransaction();
            first.send(new ProducerRecord<>(topic, 0, null, "zombie")).get(30, TimeUnit.SECONDS);
            first.commitTransaction();
            System.out.println("NOT FENCED");
        } catch (ExecutionException e) {
            System.out.println("FENCED " + e.getCause().getClass().getSimpleName());
        } catch (KafkaException e) {
            System.out.println("FENCED " + e.getClass().getSimpleName());
        }
        first.close();

        successor.beginTransaction();
        send(successor, topic, "s1");
        successor.commitTransaction();
        System.out.println("SUCCESSOR");
        successor.close();
    }

    private static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        return new KafkaProducer<>(props);
    }

    private static void send(KafkaProducer<String, String> producer, String topic, String... values)
            throws Exception {
        for (String value : values) {
            producer.send(new ProducerRecord<>(topic, 0, null, value)).get(30, TimeUnit.SECONDS);
        }
    }
}
