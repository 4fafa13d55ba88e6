//! Past versions of an asset: its materializations (or a source's observations), newest first,
//! a page at a time.

use chrono::{DateTime, Utc};

use freshet_plan::model::{
    AssetKey, CodeVersion, DataVersion, InputVersion, Materialization, MaterializationId,
    Observation, RunId,
};

use crate::lineage::{details, parse_key};
use crate::{Result, Store, from_i64, from_micros, get, micros, store_error};

/// Selects materializations with their inputs (one row per input, or one with NULL inputs).
macro_rules! select_materializations {
    ($inner:literal) => {
        concat!(
            "SELECT m.id, m.asset, m.run_id, m.code_version, m.data_version, m.location, \
             m.row_count, m.byte_size, m.duration_us, m.created_at, m.data_time, \
             i.input_asset, i.data_version, m.details, m.collected_at \
             FROM (",
            $inner,
            ") m LEFT JOIN materialization_inputs i ON i.materialization_id = m.id \
             ORDER BY m.created_at DESC, m.id DESC, i.input_asset"
        )
    };
}

/// One page of a list, newest first: at most the limit asked for, and whether more follow the
/// last item (ask again from it).
///
/// Every paged read fetches one row over the limit to know, so a full last page says it is the
/// last.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Whether older items follow the last one.
    pub more: bool,
}

impl<T> Page<T> {
    /// How many rows to fetch for a page of `limit`.
    pub(crate) fn fetch(limit: u32) -> i64 {
        i64::from(limit) + 1
    }

    /// The page of `limit` out of the rows fetched with [`Page::fetch`].
    pub(crate) fn of(mut rows: Vec<T>, limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        Self { items: rows, more }
    }
}

impl Store {
    /// An asset's materializations, newest first: a page of `limit`, older than `before` (the
    /// creation time and id of a previous page's last one).
    pub async fn materializations_of(
        &self,
        asset: &AssetKey,
        limit: u32,
        before: Option<(DateTime<Utc>, &str)>,
    ) -> Result<Page<Materialization>> {
        const SQL: &str = select_materializations!(
            "SELECT * FROM materializations WHERE asset = $1 AND partition_key = '' \
             AND (CAST($2 AS BIGINT) IS NULL OR created_at < $2 \
                  OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = sqlx::query(SQL)
            .bind(asset.as_str())
            .bind(before.map(|(at, _)| micros(at)))
            .bind(before.map(|(_, id)| id).unwrap_or_default())
            .bind(Page::<Materialization>::fetch(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(Page::of(materializations(&rows)?, limit))
    }

    /// One materialization by id, if it exists.
    pub async fn materialization(&self, id: &str) -> Result<Option<Materialization>> {
        const SQL: &str = select_materializations!("SELECT * FROM materializations WHERE id = $1");
        let rows = sqlx::query(SQL)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(materializations(&rows)?.pop())
    }

    /// A source's observations (each version it was seen to change to) with their ids, newest
    /// first: a page of `limit`, older than `before`.
    pub async fn observations_of(
        &self,
        asset: &AssetKey,
        limit: u32,
        before: Option<(DateTime<Utc>, &str)>,
    ) -> Result<Page<(String, Observation)>> {
        let rows = sqlx::query(
            "SELECT id, data_version, file_count, byte_size, observed_at, checked_at \
             FROM observations WHERE asset = $1 AND partition_key = '' \
             AND (CAST($2 AS BIGINT) IS NULL OR observed_at < $2 \
                  OR (observed_at = $2 AND id < $3)) \
             ORDER BY observed_at DESC, id DESC LIMIT $4",
        )
        .bind(asset.as_str())
        .bind(before.map(|(at, _)| micros(at)))
        .bind(before.map(|(_, id)| id).unwrap_or_default())
        .bind(Page::<Observation>::fetch(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let rows = rows
            .iter()
            .map(|row| {
                let observed_at = from_micros(get(row, 4)?);
                Ok((
                    get(row, 0)?,
                    Observation {
                        asset: asset.clone(),
                        data_version: DataVersion::new(get::<String>(row, 1)?),
                        file_count: from_i64(get(row, 2)?),
                        byte_size: from_i64(get(row, 3)?),
                        observed_at,
                        checked_at: get::<Option<i64>>(row, 5)?.map_or(observed_at, from_micros),
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::of(rows, limit))
    }
}

fn materializations(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Materialization>> {
    let mut out: Vec<Materialization> = Vec::new();
    for row in rows {
        let id: String = get(row, 0)?;
        let input = match get::<Option<String>>(row, 11)? {
            Some(asset) => Some(InputVersion {
                asset: parse_key(&asset, "materialization_inputs")?,
                data_version: DataVersion::new(get::<String>(row, 12)?),
            }),
            None => None,
        };
        if let Some(last) = out.last_mut()
            && last.id.as_str() == id
        {
            last.inputs.extend(input);
            continue;
        }
        let asset = parse_key(&get::<String>(row, 1)?, "materializations")?;
        out.push(Materialization {
            asset,
            run_id: RunId::new(get::<String>(row, 2)?),
            code_version: CodeVersion::new(get::<String>(row, 3)?),
            data_version: DataVersion::new(get::<String>(row, 4)?),
            location: get(row, 5)?,
            row_count: from_i64(get(row, 6)?),
            byte_size: from_i64(get(row, 7)?),
            duration_us: from_i64(get(row, 8)?),
            created_at: from_micros(get(row, 9)?),
            data_time: get::<Option<i64>>(row, 10)?.map(from_micros),
            inputs: input.into_iter().collect(),
            details: details(get(row, 13)?, &id)?,
            collected_at: get::<Option<i64>>(row, 14)?.map(from_micros),
            id: MaterializationId::new(id),
        });
    }
    Ok(out)
}
