/*
 * kafka_mock: a Kafka cluster for the tests, librdkafka's mock cluster
 * (rdkafka_mock.h) in a process of its own, since no Kafka broker is
 * packaged for the test machines.
 *
 *   kafka_mock [--brokers N] [--partitions P] --topic T [--topic T2 ...]
 *              --port-file FILE
 *
 * Starts N brokers (default 1) listening on loopback ports, creates each
 * topic with P partitions (default 1; replication min(N, 3)), writes the
 * bootstrap servers ("127.0.0.1:PORT,...") to FILE (whole: written next
 * to it and renamed) and to standard output, then serves until SIGTERM or
 * SIGINT, and exits 0.
 *
 * The mock keeps the last 5 MiB (or 100,000 message sets) of a partition
 * and deletes older ones, which moves the partition's start; it writes no
 * transaction markers and lists no aborted transactions; its Metadata is
 * version 2 at most, so it creates a topic a client asks for by name.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPICS_MAX 32

static void usage(void)
{
	fprintf(stderr, "usage: kafka_mock [--brokers N] [--partitions P] --topic T "
	                "[--topic T2 ...] --port-file FILE\n");
	exit(2);
}

static int count_arg(const char *text)
{
	char *end;
	long v = strtol(text, &end, 10);
	if (*text == '\0' || *end != '\0' || v < 1 || v > 1000)
		usage();
	return (int)v;
}

static int write_port_file(const char *path, const char *bootstraps)
{
	char tmp[4096];
	FILE *f;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")) || fprintf(f, "%s\n", bootstraps) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *topics[TOPICS_MAX], *port_file = NULL;
	int n_topics = 0, brokers = 1, partitions = 1, sig = 0, rc = 1;
	rd_kafka_mock_cluster_t *mock = NULL;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char errstr[512];
	sigset_t stop;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--brokers") == 0)
			brokers = count_arg(argv[++i]);
		else if (strcmp(argv[i], "--partitions") == 0)
			partitions = count_arg(argv[++i]);
		else if (strcmp(argv[i], "--topic") == 0 && n_topics < TOPICS_MAX)
			topics[n_topics++] = argv[++i];
		else if (strcmp(argv[i], "--port-file") == 0)
			port_file = argv[++i];
		else
			usage();
	}
	if (n_topics == 0 || !port_file)
		usage();

	/* librdkafka's threads inherit this mask, so the signals come to
	 * sigwait here. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka_mock: %s\n", errstr);
		return 1;
	}
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
		fprintf(stderr, "kafka_mock: %s\n", errstr);
		return 1;
	}
	if (!(mock = rd_kafka_mock_cluster_new(rk, brokers))) {
		fprintf(stderr, "kafka_mock: cannot start %d brokers\n", brokers);
		goto out;
	}
	for (int i = 0; i < n_topics; i++) {
		rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mock, topics[i], partitions,
		                                                     brokers < 3 ? brokers : 3);
		if (err) {
			fprintf(stderr, "kafka_mock: topic %s: %s\n", topics[i],
			        rd_kafka_err2str(err));
			goto out;
		}
	}
	if (write_port_file(port_file, rd_kafka_mock_cluster_bootstraps(mock)) != 0)
		goto out;
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mock));
	fflush(stdout);
	if (sigwait(&stop, &sig) == 0)
		rc = 0;
out:
	if (mock)
		rd_kafka_mock_cluster_destroy(mock);
	rd_kafka_destroy(rk);
	return rc;
}
