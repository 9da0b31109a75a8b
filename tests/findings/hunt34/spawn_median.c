/* Median wall time of posix_spawn + wait of a program under each LD_PRELOAD
 * given ("-": none), runs interleaved; the child's stdout to /dev/null.
 * Session 34's start-up table (BENCHMARKS.md "Session 34").
 *   cc -O2 -o spawn_median spawn_median.c
 *   ./spawn_median 500 /bin/true - libempty_preload.so libhakmem.so */
// sp N prog so1 so2 ... : median us of spawn+wait per preload, interleaved
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){int n=atoi(argv[1]);char*prog=argv[2];int k=argc-3;
 posix_spawn_file_actions_t fa;posix_spawn_file_actions_init(&fa);posix_spawn_file_actions_addopen(&fa,1,"/dev/null",1,0);
 double*t=calloc((size_t)n*k,sizeof(double));
 for(int r=0;r<n;r++)for(int i=0;i<k;i++){char env[600];snprintf(env,600,"LD_PRELOAD=%s",argv[3+i]);
  char*e[]={env,NULL};char*a[]={prog,NULL};pid_t p;double t0=now();
  posix_spawn(&p,prog,&fa,NULL,a,strcmp(argv[3+i],"-")?e:(char*[]){NULL});int st;waitpid(p,&st,0);t[i*n+r]=now()-t0;}
 for(int i=0;i<k;i++){qsort(t+i*n,n,sizeof(double),cmp);printf("%-50s %.0f\n",argv[3+i],t[i*n+n/2]);}}
