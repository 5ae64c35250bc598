/*
 * kafka_produce: messages for the tests, written to a Kafka cluster (the
 * mock cluster of kafka_mock, or any other).
 *
 *   kafka_produce [--op-header NAME] [--version-header NAME] BOOTSTRAP TOPIC
 *
 * Reads one message a line from standard input, fields separated by tabs,
 * in the text form of kafka_text.h ("-" alone: absent; \t, \n, \\, \xHH):
 *
 *   PARTITION  KEY  OP  [VALUE  [VERSION]]
 *
 *   PARTITION  the partition, or - for the partitioner's choice by key
 *   KEY        the message's key, or - for none
 *   OP         the op header's value (any text, so bad ones can be made
 *              too), or - for no op header
 *   VALUE      the value, or - (or left out) for a null value
 *   VERSION    the version header's value, or - (or left out) for none
 *
 * Blank lines and lines starting with '#' are skipped. The headers are
 * named "op" and "version" unless named otherwise. The producer is
 * idempotent (acks=all, and retries keep the order of a partition).
 * Prints "delivered N" once every message is delivered, and exits 0;
 * exits 1 when a message was not delivered (within 30 s), 2 for a line it
 * cannot read (what was produced before it is flushed first).
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_text.h"

#define LINE_MAX_BYTES (4 << 20)
#define FIELDS_MAX     5

static long delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err) {
		fprintf(stderr, "kafka_produce: partition %d offset %lld: %s\n", (int)m->partition,
		        (long long)m->offset, rd_kafka_err2str(m->err));
		failed++;
	} else {
		delivered++;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: kafka_produce [--op-header NAME] [--version-header NAME] "
	                "BOOTSTRAP TOPIC < lines\n");
	exit(2);
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka_produce: %s: %s\n", name, errstr);
		return -1;
	}
	return 0;
}

/* Splits line at tabs and unescapes each field in place: the number of
 * fields, or -1. present[i] is 0 for a field that is "-". */
static int split(char *line, uint8_t **field, size_t *len, int *present)
{
	int n = 0;
	char *p = line;
	for (;;) {
		char *tab = strchr(p, '\t');
		size_t text_len = tab ? (size_t)(tab - p) : strlen(p);
		if (n == FIELDS_MAX)
			return -1;
		present[n] = !(text_len == 1 && p[0] == '-');
		field[n] = (uint8_t *)p;
		if (kt_unescape(p, text_len, field[n], &len[n]) != 0)
			return -1;
		n++;
		if (!tab)
			return n;
		p = tab + 1;
	}
}

/* One line to a message. 0, or -1 with the reason printed. */
static int produce_line(rd_kafka_t *rk, const char *topic, const char *op_header,
                        const char *version_header, char *line, long line_no)
{
	uint8_t *field[FIELDS_MAX];
	size_t len[FIELDS_MAX];
	int present[FIELDS_MAX] = {0};
	int32_t partition = RD_KAFKA_PARTITION_UA;
	rd_kafka_headers_t *hdrs;
	rd_kafka_resp_err_t err;
	void *key, *value;
	size_t key_len, value_len;
	int n = split(line, field, len, present);

	if (n < 3) {
		fprintf(stderr, "kafka_produce: line %ld: not PARTITION KEY OP [VALUE [VERSION]]\n",
		        line_no);
		return -1;
	}
	if (present[0]) {
		char text[16], *end;
		long p;
		if (len[0] == 0 || len[0] >= sizeof(text))
			goto bad_partition;
		memcpy(text, field[0], len[0]);
		text[len[0]] = '\0';
		p = strtol(text, &end, 10);
		if (*end != '\0' || p < 0 || p > INT32_MAX)
			goto bad_partition;
		partition = (int32_t)p;
	}
	key = present[1] ? field[1] : NULL;
	key_len = present[1] ? len[1] : 0;
	value = n >= 4 && present[3] ? field[3] : NULL;
	value_len = value ? len[3] : 0;
	hdrs = rd_kafka_headers_new(2);
	if (present[2])
		rd_kafka_header_add(hdrs, op_header, -1, field[2], (ssize_t)len[2]);
	if (n >= 5 && present[4])
		rd_kafka_header_add(hdrs, version_header, -1, field[4], (ssize_t)len[4]);
	for (;;) {
		err = rd_kafka_producev(
		        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
		        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
		        RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(rk, 100);
	}
	if (err) {
		rd_kafka_headers_destroy(hdrs);
		fprintf(stderr, "kafka_produce: line %ld: %s\n", line_no, rd_kafka_err2str(err));
		failed++;
	}
	rd_kafka_poll(rk, 0);
	return 0;
bad_partition:
	fprintf(stderr, "kafka_produce: line %ld: the partition is a number or -\n", line_no);
	return -1;
}

int main(int argc, char **argv)
{
	const char *op_header = "op", *version_header = "version";
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512], *line = malloc(LINE_MAX_BYTES);
	long line_no = 0;
	int argi = 1, rc = 0;
	rd_kafka_t *rk;

	while (argi + 1 < argc && strncmp(argv[argi], "--", 2) == 0) {
		if (strcmp(argv[argi], "--op-header") == 0)
			op_header = argv[argi + 1];
		else if (strcmp(argv[argi], "--version-header") == 0)
			version_header = argv[argi + 1];
		else
			usage();
		argi += 2;
	}
	if (argc - argi != 2 || !line)
		usage();
	if (set(conf, "bootstrap.servers", argv[argi]) != 0 ||
	    set(conf, "enable.idempotence", "true") != 0 || set(conf, "acks", "all") != 0 ||
	    set(conf, "linger.ms", "5") != 0 || set(conf, "message.timeout.ms", "30000") != 0 ||
	    set(conf, "log_level", "3") != 0)
		return 2;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
		fprintf(stderr, "kafka_produce: %s\n", errstr);
		return 2;
	}
	while (fgets(line, LINE_MAX_BYTES, stdin)) {
		size_t len = strlen(line);
		line_no++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(stdin)) {
			fprintf(stderr, "kafka_produce: line %ld: longer than %d bytes\n", line_no,
			        LINE_MAX_BYTES);
			rc = 2;
			break;
		}
		if (len == 0 || line[0] == '#')
			continue;
		if (produce_line(rk, argv[argi + 1], op_header, version_header, line, line_no) !=
		    0) {
			rc = 2;
			break;
		}
	}
	if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "kafka_produce: %d messages were never delivered\n",
		        rd_kafka_outq_len(rk));
		failed++;
	}
	rd_kafka_destroy(rk);
	free(line);
	printf("delivered %ld\n", delivered);
	if (rc == 0 && failed > 0)
		rc = 1;
	return rc;
}
