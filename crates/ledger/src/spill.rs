//! The spill file: ledger rows kept on local disk while PostgreSQL cannot be reached,
//! one JSON row a line, appended and synced per batch, replayed when it returns.
//!
//! The file is locked while a writer has it open, so two gateways cannot share one.
//! Replaying inserts with `ON CONFLICT (request_id, started_at_unix_ms) DO NOTHING`, so a replay cut short
//! (a crash, the database dropping again) is simply run again from the start.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{LedgerError, LedgerRow, Result};

/// An open, locked spill file and how many rows it holds.
#[derive(Debug)]
pub(crate) struct Spill {
    path: PathBuf,
    file: File,
    rows: u64,
}

/// What reading the file back found.
#[derive(Debug, Default)]
pub(crate) struct ReadBack {
    pub(crate) rows: Vec<LedgerRow>,
    /// Lines that did not parse (a write cut off by a crash), each logged.
    pub(crate) unreadable: u64,
}

impl Spill {
    /// Opens (creating if missing) and locks the file; counts the rows a previous run
    /// left in it.
    pub(crate) fn open(path: &Path) -> Result<Spill> {
        let err = |source| LedgerError::Spill {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(err)?;
        file.try_lock().map_err(|e| {
            err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("another process has it open ({e}); give each gateway its own spill file"),
            ))
        })?;
        let rows = BufReader::new(&file).lines().count() as u64;
        Ok(Spill {
            path: path.to_owned(),
            file,
            rows,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in the file now.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends `rows` and syncs the file: once this returns, they survive a crash.
    pub(crate) fn append(&mut self, rows: &[LedgerRow]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(rows.len() * 512);
        for row in rows {
            serde_json::to_writer(&mut buf, row)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Every row in the file, oldest first.
    pub(crate) fn read_all(&mut self) -> std::io::Result<ReadBack> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut back = ReadBack::default();
        for (n, line) in BufReader::new(&self.file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LedgerRow>(&line) {
                Ok(row) => back.rows.push(row),
                Err(e) => {
                    back.unreadable += 1;
                    tracing::error!(file = %self.path.display(), line = n + 1, error = %e,
                        "ledger spill file line unreadable; row lost");
                }
            }
        }
        Ok(back)
    }

    /// Empties the file once everything in it is in the database.
    pub(crate) fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.rows = 0;
        Ok(())
    }
}
