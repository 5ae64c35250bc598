/*
 * Real servers for integration tests: tu_services_start runs
 * scripts/services.sh (PostgreSQL 15, s3rver, MariaDB on loopback, throwaway
 * directories, free ports) and reads back what it printed; tu_services_stop
 * stops them and removes their directory. CTest sets SLUICE_TEST_DATA to
 * the source tree's tests/ directory, which is how the script is found.
 */
#ifndef SLUICE_TEST_SERVICES_H
#define SLUICE_TEST_SERVICES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tu_services {
	char dir[1024];        /* SLUICE_SERVICES_DIR */
	char pg_url[256];      /* "" unless pg was started */
	char s3_endpoint[256]; /* "" unless s3 was started */
	char mysql_url[256];   /* "" unless mysql was started */
	char redis_url[256];   /* "" unless redis was started */
	int pg_port, s3_port, mysql_port, redis_port;
} tu_services;

static inline const char *tu_services_script(void)
{
	static char path[2048];
	const char *tests = getenv("SLUICE_TEST_DATA");
	snprintf(path, sizeof(path), "%s/../scripts/services.sh", tests ? tests : "tests");
	return path;
}

/* which: any of "pg", "s3", "mysql", "redis", space-separated. Returns 0 on
 * success. */
static inline int tu_services_start(tu_services *out, const char *which)
{
	char cmd[4096], line[2048];
	FILE *p;
	memset(out, 0, sizeof(*out));
	snprintf(cmd, sizeof(cmd), "bash %s start %s", tu_services_script(), which);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL) {
		char *v = strchr(line, '=');
		if (v == NULL)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\n")] = '\0';
		if (strcmp(line, "export SLUICE_SERVICES_DIR") == 0)
			snprintf(out->dir, sizeof(out->dir), "%s", v);
		else if (strcmp(line, "export SLUICE_PG_URL") == 0)
			snprintf(out->pg_url, sizeof(out->pg_url), "%s", v);
		else if (strcmp(line, "export SLUICE_S3_ENDPOINT") == 0)
			snprintf(out->s3_endpoint, sizeof(out->s3_endpoint), "%s", v);
		else if (strcmp(line, "export SLUICE_MYSQL_URL") == 0)
			snprintf(out->mysql_url, sizeof(out->mysql_url), "%s", v);
		else if (strcmp(line, "export SLUICE_REDIS_URL") == 0)
			snprintf(out->redis_url, sizeof(out->redis_url), "%s", v);
		else if (strcmp(line, "export SLUICE_REDIS_PORT") == 0)
			out->redis_port = atoi(v);
		else if (strcmp(line, "export SLUICE_MYSQL_PORT") == 0)
			out->mysql_port = atoi(v);
		else if (strcmp(line, "export SLUICE_PG_PORT") == 0)
			out->pg_port = atoi(v);
		else if (strcmp(line, "export SLUICE_S3_PORT") == 0)
			out->s3_port = atoi(v);
	}
	if (pclose(p) != 0 || out->dir[0] == '\0')
		return -1;
	return 0;
}

/* action: "stop", "restart-pg", "stop-pg", "start-pg", "stop-mysql",
 * "start-mysql", "crash-mysql", "kill-redis", "start-redis". */
static inline int tu_services_run(const tu_services *s, const char *action)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "bash %s %s %s", tu_services_script(), action, s->dir);
	return system(cmd);
}

static inline void tu_services_stop(tu_services *s)
{
	if (s->dir[0] != '\0')
		tu_services_run(s, "stop");
	s->dir[0] = '\0';
}

#endif
