/* What every connector shares: rows, destination keys, and closing the
 * vtables. A row's destination key is recall-synchronizer's layout,
 * "[competition_id/][agent_id/]<data_type>/<id>", checked against the
 * store's key rules so that no sink ever sees "..", an empty segment or a
 * control character. */
#include <string.h>

#include "sluice/connect.h"
#include "sluice/store.h"

void sl_row_free(sl_row *row)
{
	if (row == NULL)
		return;
	sl_free(row->key);
	sl_free(row->object_key);
	sl_free(row->bucket);
	sl_free(row->error);
	sl_free(row->data);
	row->key = NULL;
	row->object_key = NULL;
	row->bucket = NULL;
	row->error = NULL;
	row->data = NULL;
	row->has_data = 0;
}

void sl_row_batch_free(sl_row_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		sl_row_free(&b->rows[i]);
	sl_free(b->rows);
	b->rows = NULL;
	b->n = 0;
}

int sl_row_copy(sl_row *out, const sl_row *in)
{
	sl_row row = *in;
	row.key = NULL;
	row.object_key = NULL;
	row.bucket = NULL;
	row.error = NULL;
	row.data = NULL;
	if ((in->has_data && (row.data = sl_malloc(in->data_len ? in->data_len : 1)) == NULL) ||
	    (in->key != NULL && (row.key = sl_strdup(in->key)) == NULL) ||
	    (in->object_key != NULL && (row.object_key = sl_strdup(in->object_key)) == NULL) ||
	    (in->bucket != NULL && (row.bucket = sl_strdup(in->bucket)) == NULL) ||
	    (in->error != NULL && (row.error = sl_strdup(in->error)) == NULL)) {
		sl_row_free(&row);
		return SL_ENOMEM;
	}
	if (in->has_data && in->data_len > 0)
		memcpy(row.data, in->data, in->data_len);
	*out = row;
	return SL_OK;
}

int sl_object_key_build(char **out, const char *competition_id, const char *agent_id,
                        const char *data_type, const char *id)
{
	sl_buf key;
	int rc;

	if (data_type == NULL || data_type[0] == '\0')
		return sl_error_set(SL_EINVAL, "row %s has no data_type", id ? id : "(null)");
	if (id == NULL || id[0] == '\0')
		return sl_error_set(SL_EINVAL, "row has no id");
	sl_buf_init(&key, SL_KEY_MAX);
	if (competition_id != NULL && competition_id[0] != '\0' &&
	    (rc = sl_buf_printf(&key, "%s/", competition_id)) != SL_OK)
		goto cleanup;
	if (agent_id != NULL && agent_id[0] != '\0' &&
	    (rc = sl_buf_printf(&key, "%s/", agent_id)) != SL_OK)
		goto cleanup;
	if ((rc = sl_buf_printf(&key, "%s/%s", data_type, id)) != SL_OK)
		goto cleanup;
	if ((rc = sl_key_validate((const char *)key.data, key.len)) != SL_OK) {
		rc = sl_error_wrap("row %s: destination key", id);
		goto cleanup;
	}
	*out = (char *)key.data; /* sl_buf keeps a NUL after the data */
	return SL_OK;
cleanup:
	sl_buf_free(&key);
	return rc;
}

void sl_fetcher_close(sl_fetcher *f)
{
	if (f == NULL || f->ops == NULL)
		return;
	f->ops->close(f->self);
	f->ops = NULL;
	f->self = NULL;
}

void sl_sink_close(sl_sink *s)
{
	if (s == NULL || s->ops == NULL)
		return;
	s->ops->close(s->self);
	s->ops = NULL;
	s->self = NULL;
}

void sl_source_close(sl_source *s)
{
	if (s == NULL || s->ops == NULL)
		return;
	s->ops->close(s->self);
	s->ops = NULL;
	s->self = NULL;
}
