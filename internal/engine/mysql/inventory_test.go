package mysql

import (
	"reflect"
	"testing"

	"github.com/backstop-io/backstop/internal/manifest"
)

func countSplit(t *testing.T, dump string, want []manifest.TableRows) {
	t.Helper()
	run := func(parts ...string) []manifest.TableRows {
		c := NewInventory()
		for _, p := range parts {
			if n, err := c.Write([]byte(p)); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		inv, err := c.Result()
		if err != nil {
			t.Fatal(err)
		}
		return inv.Tables
	}
	for i := 0; i <= len(dump); i++ {
		if got := run(dump[:i], dump[i:]); !reflect.DeepEqual(got, want) {
			t.Fatalf("cut at byte %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	var bytes []string
	for i := range dump {
		bytes = append(bytes, dump[i:i+1])
	}
	if got := run(bytes...); !reflect.DeepEqual(got, want) {
		t.Fatalf("one byte per write:\n got %+v\nwant %+v", got, want)
	}
}

// Rows are the tuples of INSERT statements, whatever their strings hold;
// views, sequences and the bodies of triggers and routines add nothing;
// the database comes from Backstop's marker or USE.
func TestInventory_CountsInsertTuplesPerTable(t *testing.T) {
	dump := "-- backstop-database: shop\n" +
		"CREATE DATABASE IF NOT EXISTS `shop`;\nUSE `shop`;\n" +
		"-- MariaDB dump 10.19\n--\n-- Table structure for table `t`\n--\n\n" +
		"DROP TABLE IF EXISTS `t`;\n/*!40101 SET @saved_cs_client     = @@character_set_client */;\n" +
		"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `s` text DEFAULT 'a),(b',\n  `b` blob,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n" +
		"/*!40000 ALTER TABLE `t` DISABLE KEYS */;\n" +
		"INSERT INTO `t` VALUES (1,'a,b(c)d',0x28292C27),(2,'it\\'s \\\\',NULL),(3,'x''y\\n\\r\"z',_binary 'q(')," +
		"(4,\"dq'(\",NULL);\n" +
		"INSERT INTO `t` VALUES (5,'',0x);\n" +
		"INSERT INTO `t` VALUES\n(6,'a\\n',NULL),\n(7,')',0x29);\n" +
		"/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n" +
		"CREATE TABLE `we``ird` (\n  `VALUES` int\n);\n" +
		"INSERT INTO `we``ird` (`VALUES`, `(`) VALUES (1,2),(3,4);\n" +
		"CREATE TABLE `empty` (\n  `a` int\n);\n" +
		"--\n-- Temporary table structure for view `v`\n--\n\n" +
		"DROP TABLE IF EXISTS `v`;\n/*!50001 DROP VIEW IF EXISTS `v`*/;\n" +
		"/*!50001 CREATE TABLE `v` (\n  `id` tinyint NOT NULL\n) ENGINE=MyISAM */;\n" +
		"/*!50001 CREATE VIEW `v2` AS SELECT\n 1 AS `id` */;\n" +
		"CREATE SEQUENCE `seq` start with 1;\nSELECT SETVAL(`seq`, 1, 0);\n" +
		"DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `trg` AFTER INSERT ON `t` FOR EACH ROW\n" +
		"INSERT INTO `t` VALUES (9,'x',NULL) */;;\nCREATE TABLE `in_trigger` (a int);\nDELIMITER ;\n" +
		"-- Dump completed\n\n" +
		"-- backstop-events: shop\n-- Dump completed\n" +
		"-- backstop-database: other\n" +
		"CREATE TABLE `t` (\n  `a` int\n);\nINSERT INTO `t` VALUES (1);\nINSERT INTO `other`.`t` VALUES (2);\n-- Dump completed\n"
	countSplit(t, dump, []manifest.TableRows{
		{Database: "shop", Name: "t", Rows: 7},
		{Database: "shop", Name: "we`ird", Rows: 2},
		{Database: "shop", Name: "empty", Rows: 0},
		{Database: "other", Name: "t", Rows: 2},
	})
}
