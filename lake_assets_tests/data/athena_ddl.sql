-- Athena DDL for the trusted zone at s3://lake-catalog-golden/lake (python -m lake_assets.catalog ddl)
CREATE DATABASE IF NOT EXISTS `trusted`;

CREATE EXTERNAL TABLE IF NOT EXISTS `trusted`.`filmes` (
  `titulo` string,
  `data_de_lancamento` date,
  `visao_geral` string,
  `popularidade` double,
  `votos` bigint,
  `media_de_votos` double,
  `pais_de_origem` string,
  `idioma_original` string,
  `generos` array<string>
)
STORED AS PARQUET
LOCATION 's3://lake-catalog-golden/lake/trusted/filmes/'
TBLPROPERTIES (
  'classification'='parquet'
);

CREATE EXTERNAL TABLE IF NOT EXISTS `trusted`.`tmdb` (
  `tmdb_id` bigint,
  `imdb_id` string,
  `titulo` string,
  `titulo_original` string,
  `data_de_lancamento` date,
  `visao_geral` string,
  `popularidade` double,
  `votos` bigint,
  `media_de_votos` double,
  `idioma_original` string,
  `generos` array<string>,
  `produtoras` array<string>,
  `paises_de_origem` array<string>,
  `duracao_minutos` int,
  `orcamento` bigint,
  `receita` bigint,
  `status` string
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION 's3://lake-catalog-golden/lake/trusted/tmdb/'
TBLPROPERTIES (
  'classification'='parquet',
  'projection.enabled'='true',
  'projection.dt.type'='date',
  'projection.dt.format'='yyyy-MM-dd',
  'projection.dt.range'='2024-01-01,NOW',
  'projection.dt.interval'='1',
  'projection.dt.interval.unit'='DAYS'
);
