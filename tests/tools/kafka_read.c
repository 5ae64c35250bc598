/*
 * kafka_read: a partition read through the Kafka event source
 * (sl_kafka_source_open), as a mirror reads it, for the tests.
 *
 *   kafka_read [--op-header NAME] [--version-header NAME] [--wait-ms MS]
 *              BOOTSTRAP TOPIC PARTITION FROM COUNT
 *
 * Reads from position FROM until COUNT events are read, printing each as
 * a line of tab-separated fields in the text form of kafka_text.h:
 *
 *   POS  OP  KEY  VALUE  VERSION      (VALUE "-" for a delete)
 *
 * then "next N" (where a following read would start). Exits 0 when COUNT
 * events were read; 3 when no event came for MS milliseconds (default
 * 10000) before that; 4 for a gap (the message and "next N" are printed:
 * N is where the partition now starts); 1 for any other error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_text.h"
#include "sluice/event_source.h"

static void usage(void)
{
	fprintf(stderr, "usage: kafka_read [--op-header NAME] [--version-header NAME] "
	                "[--wait-ms MS] BOOTSTRAP TOPIC PARTITION FROM COUNT\n");
	exit(2);
}

static unsigned long long number(const char *text)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (*text == '\0' || *text == '-' || *end != '\0')
		usage();
	return v;
}

int main(int argc, char **argv)
{
	sl_kafka_source_options o;
	sl_event_source s;
	sl_event_batch b;
	unsigned long long wait_ms = 10000, count, done = 0;
	uint64_t from, next;
	int argi = 1, rc = 0;

	sl_kafka_source_options_init(&o);
	while (argi + 1 < argc && strncmp(argv[argi], "--", 2) == 0) {
		if (strcmp(argv[argi], "--op-header") == 0)
			o.op_header = argv[argi + 1];
		else if (strcmp(argv[argi], "--version-header") == 0)
			o.version_header = argv[argi + 1];
		else if (strcmp(argv[argi], "--wait-ms") == 0)
			wait_ms = number(argv[argi + 1]);
		else
			usage();
		argi += 2;
	}
	if (argc - argi != 5)
		usage();
	o.brokers = argv[argi];
	o.topic = argv[argi + 1];
	o.partition = (int32_t)number(argv[argi + 2]);
	from = number(argv[argi + 3]);
	count = number(argv[argi + 4]);
	if (sl_kafka_source_open(&s, &o) != SL_OK) {
		fprintf(stderr, "kafka_read: %s\n", sl_error_last()->message);
		return 1;
	}
	sl_event_batch_init(&b);
	next = from;
	while (done < count) {
		int at_end = 0;
		sl_event_batch_clear(&b);
		rc = s.ops->read(s.self, from, (size_t)(count - done), SIZE_MAX, wait_ms, &b, &next,
		                 &at_end);
		if (rc == SL_ENOTFOUND) {
			fprintf(stderr, "kafka_read: %s\n", sl_error_last()->message);
			rc = 4;
			break;
		}
		if (rc != SL_OK) {
			fprintf(stderr, "kafka_read: %s\n", sl_error_last()->message);
			rc = 1;
			break;
		}
		for (size_t i = 0; i < b.n; i++) {
			const sl_event *e = &b.events[i];
			printf("%llu\t%s\t", (unsigned long long)e->pos, sl_event_op_name(e->op));
			kt_escape(stdout, e->key, e->key_len);
			putchar('\t');
			if (e->value)
				kt_escape(stdout, e->value, e->value_len);
			else
				putchar('-');
			printf("\t%llu\n", (unsigned long long)e->version);
		}
		done += b.n;
		if (b.n == 0 && next == from) {
			fprintf(stderr,
			        "kafka_read: nothing for %llu ms after %llu of %llu events\n",
			        wait_ms, done, count);
			rc = 3;
			break;
		}
		from = next;
	}
	printf("next %llu\n", (unsigned long long)next);
	sl_event_batch_free(&b);
	sl_event_source_close(&s);
	return rc;
}
